"""`/v1/usage`: the account's messages, attempts per channel and WhatsApp
conversations in a period (services/usage.py says what counts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from wafile.api.deps import ApiKeyAuth, ContextDep, SessionDep
from wafile.api.problems import problem_responses
from wafile.services.usage import usage as usage_service

router = APIRouter(prefix="/v1", tags=["usage"])

DEFAULT_PERIOD: Final = timedelta(days=30)


class MessagesOut(BaseModel):
    total: int
    delivered: int = Field(description="Delivered or read.")
    failed: int
    in_progress: int = Field(description="Accepted or in progress.")


class ChannelOut(BaseModel):
    channel: str
    attempts: int
    delivered: int = Field(description="Delivered or read, also late (after a fallback).")
    failed: int
    timed_out: int = Field(description="Its fallback time passed first.")
    pending: int = Field(description="Queued or sent: no outcome yet.")


class RecipientConversations(BaseModel):
    to: str
    sender_id: str
    conversations: int


class ConversationsOut(BaseModel):
    total: int
    by_recipient: list[RecipientConversations] = Field(
        description="Per recipient and sender, most conversations first."
    )


class UsageOut(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    messages: MessagesOut
    channels: list[ChannelOut]
    conversations: ConversationsOut


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@router.get(
    "/usage",
    response_model=UsageOut,
    response_model_by_alias=True,
    responses=problem_responses(401, 422),
)
async def usage(
    ctx: ContextDep,
    session: SessionDep,
    account: ApiKeyAuth,
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Start, included (default: `to` minus 30 days)."),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(alias="to", description="End, excluded (default: now). No zone: UTC."),
    ] = None,
) -> UsageOut:
    """Messages created in [from, to), their attempts per channel, and the WhatsApp
    conversations (24-hour sessions per recipient) that started in it."""
    until = _utc(end) if end is not None else ctx.clock.now()
    since = _utc(start) if start is not None else until - DEFAULT_PERIOD
    found = await usage_service.report(session, account=account, start=since, end=until)
    return UsageOut(
        from_=found.start,
        to=found.end,
        messages=MessagesOut(
            total=found.messages,
            delivered=found.delivered,
            failed=found.failed,
            in_progress=found.in_progress,
        ),
        channels=[
            ChannelOut(
                channel=c.channel,
                attempts=c.attempts,
                delivered=c.delivered,
                failed=c.failed,
                timed_out=c.timed_out,
                pending=c.pending,
            )
            for c in found.channels
        ],
        conversations=ConversationsOut(
            total=found.conversation_count,
            by_recipient=[
                RecipientConversations(to=c.to, sender_id=c.sender_id, conversations=c.count)
                for c in found.conversations
            ],
        ),
    )
