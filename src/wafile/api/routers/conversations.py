"""`/v1/conversations/{to}`: is the 24-hour window open; `/v1/inbound`: what users sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from wafile.api.cursors import decode_cursor, page_of
from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.core.phones import InvalidNumber, to_e164
from wafile.errors import SenderNotFound, ValidationFailed
from wafile.services.senders import senders
from wafile.services.webhooks import webhooks

router = APIRouter(prefix="/v1", tags=["conversations"])


class ConversationOut(BaseModel):
    to: str
    sender: str
    window_open: bool
    last_inbound_at: datetime | None
    window_closes_at: datetime | None
    minutes_left: int


class InboundOut(BaseModel):
    id: str
    sender_id: str
    provider_message_id: str
    from_number: str
    profile_name: str | None
    type: str
    text: str | None
    caption: str | None
    filename: str | None
    mime_type: str | None
    provider_media_id: str | None
    media_id: str | None = Field(
        description="The file in wafile's media store (`/v1/media/{id}`), once fetched."
    )
    media_error: str | None = Field(description="Why the file could not be fetched.")
    reply_to: str | None
    received_at: datetime


class InboundPage(BaseModel):
    data: list[InboundOut]
    next_cursor: str | None


@router.get(
    "/conversations/{to}",
    response_model=ConversationOut,
    responses=problem_responses(401, 404, 422),
)
async def conversation(
    to: str,
    ctx: ContextDep,
    session: SessionDep,
    account: ApiKeyAuth,
    sender: Annotated[str | None, Query(description="Sender name (default: the default)")] = None,
) -> ConversationOut:
    """Whether free-form messages to `to` are allowed now, and for how many minutes."""
    try:
        number = to_e164(to)
    except InvalidNumber as exc:
        raise ValidationFailed(str(exc)) from None
    if sender is None:
        chosen = await senders.default_for(session, account=account)
        if chosen is None:
            raise SenderNotFound("this account has no sender yet")
    else:
        chosen = await senders.get(session, account=account, name=sender)
    state = await webhooks.window(session, sender=chosen, to=number, now=ctx.clock.now())
    return ConversationOut(
        to=number,
        sender=chosen.name,
        window_open=state.open,
        last_inbound_at=state.last_inbound_at,
        window_closes_at=state.closes_at,
        minutes_left=state.minutes_left,
    )


@router.get("/inbound", response_model=InboundPage, responses=problem_responses(401, 422))
async def inbound(
    session: SessionDep,
    account: ApiKeyAuth,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> InboundPage:
    """Messages users sent to the account's senders, newest first."""
    before = decode_cursor(cursor) if cursor else None
    items = await webhooks.inbound_page(session, account=account, limit=limit + 1, before=before)
    items, next_cursor = page_of(items, limit, lambda i: (i.received_at, i.id))
    return InboundPage(
        data=[
            InboundOut(
                id=i.id,
                sender_id=i.sender_id,
                provider_message_id=i.provider_id,
                from_number=i.from_number,
                profile_name=i.profile_name,
                type=i.type,
                text=i.text,
                caption=i.caption,
                filename=i.media_filename,
                mime_type=i.media_mime_type,
                provider_media_id=i.provider_media_id,
                media_id=i.media_id,
                media_error=i.media_error,
                reply_to=i.reply_to,
                received_at=i.received_at,
            )
            for i in items
        ],
        next_cursor=next_cursor,
    )
