"""`/v1/messages`: send a file to a phone number; follow what happened to it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from wafile.api.cursors import decode_cursor, page_of
from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.core.plan import MAX_FALLBACK_TIME, MIN_FALLBACK_TIME
from wafile.core.sms_text import BODY_MAX
from wafile.db.engine import autocommit, transaction
from wafile.services.messages import MessageView, NewMessage, messages
from wafile.services.outbound import check_callback_url, guard_for

router = APIRouter(prefix="/v1", tags=["messages"])


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=512)
    language: str = Field(default="en_US", max_length=16)
    parameters: list[str] = Field(default_factory=list, max_length=20)


class ChannelIn(BaseModel):
    """One step of the plan, in order of trial (Telesign's `channels`)."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["whatsapp", "sms"]
    success: Literal["sent", "delivered", "read"] = Field(
        default="delivered", description="The status that counts as success on this channel."
    )
    fallback_time: float | None = Field(
        default=None,
        ge=MIN_FALLBACK_TIME,
        le=MAX_FALLBACK_TIME,
        description="Seconds to wait for `success` before the next channel starts; "
        "omitted: only a failure moves on.",
    )
    sender: str | None = Field(
        default=None,
        max_length=64,
        description="Sender name on this channel; default: the default.",
    )
    text: str | None = Field(
        default=None,
        max_length=BODY_MAX,
        description="SMS only: the text, with {link}, {filename} and {caption} placeholders.",
    )


class MessageIn(BaseModel):
    # Unknown fields are refused, not ignored: a misspelt or future field must not be
    # silently dropped.
    model_config = ConfigDict(extra="forbid")
    to: str = Field(description="The recipient, with country code (+4917612345678).")
    media_id: str | None = Field(
        default=None, description="A file in this account's media store (or media_url)."
    )
    media_url: str | None = Field(
        default=None,
        max_length=8192,
        description="A file on the web (or media_id): wafile fetches it into its store "
        "before sending, and sends it from there.",
    )
    provider: str | None = Field(
        default=None,
        max_length=200,
        description="With media_url: the media provider whose credentials fetch it.",
    )
    sender: str | None = Field(default=None, description="Sender name; default: the default.")
    filename: str | None = Field(default=None, max_length=1024)
    caption: str | None = None
    reply_to: str | None = Field(default=None, description="A wamid to quote.", max_length=200)
    template: TemplateIn | None = None
    reference: str | None = Field(default=None, max_length=200)
    callback_url: str | None = Field(default=None, max_length=2048)
    channels: list[ChannelIn] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="The channels to try, in order; default: the account's default plan.",
    )


class AttemptOut(BaseModel):
    number: int
    channel: str
    sender_id: str | None
    status: str
    late: bool
    provider_message_id: str | None
    segments: int | None
    error_code: int | None
    error: str | None
    queued_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    ended_at: datetime | None


class EventOut(BaseModel):
    seq: int
    recorded_at: datetime
    source: str
    event: dict[str, Any]
    applied: bool
    note: str | None


class PlanStepOut(BaseModel):
    channel: str
    success: str
    fallback_time: float | None
    sender_id: str | None
    text: str | None


class MessageOut(BaseModel):
    id: str
    status: str
    to: str
    sender_id: str
    media_id: str | None = Field(description="null until a media_url is fetched")
    media_url: str | None
    filename: str
    caption: str | None
    reference: str | None
    origin: str = Field(
        description="The API it came through: `native` (this API, the CLI) or a vendor "
        "dialect's name (`telesign`, `sinch`...): a vendor's endpoints report only its own."
    )
    reason: str | None
    created_at: datetime
    updated_at: datetime
    channels: list[PlanStepOut]
    attempts: list[AttemptOut]
    events: list[EventOut]


def _out(view: MessageView) -> MessageOut:
    m, state = view.message, view.state
    return MessageOut(
        id=m.id,
        status=str(state.status),
        to=m.to,
        sender_id=m.sender_id,
        media_id=m.media_id,
        media_url=m.media_url,
        filename=m.filename,
        caption=m.caption,
        reference=m.reference,
        origin=m.origin,
        reason=state.reason,
        created_at=m.created_at,
        updated_at=m.updated_at,
        channels=[
            PlanStepOut(
                channel=str(step.channel),
                success=str(step.success),
                fallback_time=step.fallback_time,
                sender_id=step.sender_id,
                text=step.text,
            )
            for step in m.plan
        ],
        attempts=[
            AttemptOut(
                number=a.number,
                channel=str(a.channel),
                sender_id=m.plan[a.number].sender_id,
                status=str(a.status),
                late=a.late,
                provider_message_id=a.provider_id,
                segments=a.segments,
                error_code=a.error_code,
                error=a.error,
                queued_at=a.queued_at,
                sent_at=a.sent_at,
                delivered_at=a.delivered_at,
                read_at=a.read_at,
                ended_at=a.ended_at,
            )
            for a in state.attempts
        ],
        events=[
            EventOut(seq=seq, recorded_at=at, source=src, event=ev, applied=ok, note=note)
            for seq, at, src, ev, ok, note in view.events
        ],
    )


@router.post(
    "/messages",
    status_code=202,
    response_model=MessageOut,
    responses=problem_responses(401, 404, 409, 422),
)
async def send_message(
    body: MessageIn,
    response: Response,
    ctx: ContextDep,
    account: ApiKeyAuth,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Repeat a POST safely: same key, same message."),
    ] = None,
) -> MessageOut:
    """Send a file: over WhatsApp, then SMS if the plan says so. 202: accepted; follow it
    with `GET /v1/messages/{id}` or callbacks."""
    if body.callback_url is not None:  # refused now, not at the first delivery
        check_callback_url(
            body.callback_url,
            allow_loopback_http=ctx.settings.callback_loopback_ok,
            field="callback_url",
        )
    if body.media_url is not None:  # its form now; where it resolves, when fetched
        guard_for(ctx.settings).check_url(body.media_url, field="media_url")
    request = NewMessage(
        to=body.to,
        media_id=body.media_id,
        media_url=body.media_url,
        provider=body.provider,
        sender=body.sender,
        filename=body.filename,
        caption=body.caption,
        reply_to=body.reply_to,
        template=body.template.model_dump() if body.template else None,
        reference=body.reference,
        callback_url=body.callback_url,
        channels=(
            tuple(c.model_dump(exclude_none=True) for c in body.channels)
            if body.channels is not None
            else None
        ),
    )
    if idempotency_key is None:
        # Checked with reads that need no transaction, then stored together with the
        # messages other requests accept meanwhile: one commit for all of them.
        async with autocommit(ctx.sessions) as reads:
            checked = await messages.check(
                reads,
                account=account,
                request=request,
                idempotency_key=None,
                now=ctx.clock.now(),
                media_of=ctx.media_lookup,
            )
        return _out(await ctx.accepted.submit(ctx.sessions, checked))
    # One transaction of its own (SessionDep's, opened here only when needed: the
    # usual request above never uses one).
    async with transaction(ctx.sessions) as session:
        view, created = await messages.accept(
            session,
            account=account,
            request=request,
            idempotency_key=idempotency_key,
            now=ctx.clock.now(),
        )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _out(view)


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


@router.get("/messages", response_model=MessagePage, responses=problem_responses(401, 422))
async def list_messages(
    session: SessionDep,
    account: ApiKeyAuth,
    status: Annotated[
        Literal["accepted", "in_progress", "delivered", "read", "failed"] | None, Query()
    ] = None,
    to: Annotated[str | None, Query(description="Only to this number")] = None,
    since: Annotated[datetime | None, Query(description="Only created at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> MessagePage:
    """The account's messages, newest first."""
    before = decode_cursor(cursor) if cursor else None
    views = await messages.page(
        session,
        account=account,
        limit=limit + 1,
        before=before,
        status=status,
        to=to,
        since=since,
    )
    views, next_cursor = page_of(views, limit, lambda v: (v.message.created_at, v.message.id))
    return MessagePage(data=[_out(v) for v in views], next_cursor=next_cursor)


@router.get(
    "/messages/{message_id}", response_model=MessageOut, responses=problem_responses(401, 404)
)
async def get_message(message_id: str, session: SessionDep, account: ApiKeyAuth) -> MessageOut:
    """The message, its attempts and its event timeline."""
    return _out(await messages.view(session, account=account, message_id=message_id))
