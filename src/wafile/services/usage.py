"""The usage report: an account's messages, attempts per channel and WhatsApp
conversations in a period (`GET /v1/usage`).

Messages and attempts belong to the period their message was created in. A
*conversation* is 99digital's billing unit (seed 002): a 24-hour session between one
business number and one client that starts when the business sends the client a
message; every message in those 24 hours belongs to it, and the first one after them
starts the next. wafile counts a send when WhatsApp took the attempt (`sent`: an
attempt refused at once never reached the client), and a conversation in the period
its first send falls in. Sends of the 24 hours before the period are read too, so a
conversation that runs into the period is not counted again.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account
from wafile.core.message_codec import event_from_json
from wafile.core.message_state import AttemptStatus, MessageState, MessageStatus, replay
from wafile.core.plan import Channel
from wafile.db.usage import LoggedMessage, UsageRepository
from wafile.errors import ValidationFailed

__all__ = [
    "CONVERSATION",
    "MAX_PERIOD",
    "ChannelUsage",
    "Conversations",
    "Usage",
    "UsageService",
    "conversation_starts",
    "usage",
]

CONVERSATION: Final = timedelta(hours=24)
MAX_PERIOD: Final = timedelta(days=366)  # one report reads every message of its period


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelUsage:
    channel: str
    attempts: int
    delivered: int  # delivered or read (also when late, after a fallback)
    failed: int
    timed_out: int  # its fallback time passed first (and nothing came later)
    pending: int  # queued or sent: no outcome yet


@dataclass(frozen=True, kw_only=True, slots=True)
class Conversations:
    sender_id: str
    to: str
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    start: datetime
    end: datetime
    messages: int
    delivered: int  # messages delivered or read
    failed: int
    in_progress: int  # accepted or in progress
    channels: tuple[ChannelUsage, ...]
    conversations: tuple[Conversations, ...]  # per (sender, recipient), most first

    @property
    def conversation_count(self) -> int:
        return sum(c.count for c in self.conversations)


def conversation_starts(
    sends: Iterable[tuple[str, str, datetime]],
) -> dict[tuple[str, str], list[datetime]]:
    """When each (sender, recipient)'s conversations started, from its sends' times:
    a send starts one unless another started less than CONVERSATION before it."""
    starts: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for sender_id, to, at in sorted(sends, key=lambda s: s[2]):
        began = starts[(sender_id, to)]
        if not began or at >= began[-1] + CONVERSATION:
            began.append(at)
    return dict(starts)


def _state(message: LoggedMessage) -> MessageState:
    if message.snapshot is not None:
        return message.snapshot.state
    return replay(MessageState(plan=message.plan), (event_from_json(e) for e in message.events))


_SUCCESS: Final = frozenset({AttemptStatus.DELIVERED, AttemptStatus.READ})
_PENDING: Final = frozenset({AttemptStatus.QUEUED, AttemptStatus.SENT})


def _sends(message: LoggedMessage, state: MessageState) -> list[tuple[str, str, datetime]]:
    """The message's sends WhatsApp took: (sender id, recipient, when)."""
    return [
        # Steps name their sender once accepted; None only in older plans.
        (message.plan[a.number].sender_id or message.sender_id, message.to, a.sent_at)
        for a in state.attempts
        if a.channel is Channel.WHATSAPP and a.sent_at is not None
    ]


def _report(logged: list[LoggedMessage], start: datetime, end: datetime) -> Usage:
    statuses: Counter[str] = Counter()
    tallies: dict[str, Counter[str]] = {}
    sends: list[tuple[str, str, datetime]] = []
    for message in logged:
        state = _state(message)
        in_period = message.created_at >= start
        if in_period:
            statuses[message.status] += 1
        sends += _sends(message, state)
        for attempt in state.attempts:
            if not in_period:
                continue
            tally = tallies.setdefault(str(attempt.channel), Counter())
            tally["attempts"] += 1
            if attempt.status in _SUCCESS:
                tally["delivered"] += 1
            elif attempt.status is AttemptStatus.FAILED:
                tally["failed"] += 1
            elif attempt.status is AttemptStatus.TIMED_OUT:
                tally["timed_out"] += 1
            elif attempt.status in _PENDING:
                tally["pending"] += 1
    conversations = [
        Conversations(sender_id=sender_id, to=to, count=n)
        for (sender_id, to), began in conversation_starts(sends).items()
        if (n := sum(1 for at in began if start <= at < end))
    ]
    conversations.sort(key=lambda c: (-c.count, c.to, c.sender_id))
    return Usage(
        start=start,
        end=end,
        messages=statuses.total(),
        delivered=statuses[MessageStatus.DELIVERED] + statuses[MessageStatus.READ],
        failed=statuses[MessageStatus.FAILED],
        in_progress=statuses[MessageStatus.ACCEPTED] + statuses[MessageStatus.IN_PROGRESS],
        channels=tuple(
            ChannelUsage(
                channel=channel,
                attempts=t["attempts"],
                delivered=t["delivered"],
                failed=t["failed"],
                timed_out=t["timed_out"],
                pending=t["pending"],
            )
            for channel, t in sorted(tallies.items())
        ),
        conversations=tuple(conversations),
    )


class UsageService:
    async def report(
        self, session: AsyncSession, *, account: Account, start: datetime, end: datetime
    ) -> Usage:
        """The account's usage in [start, end)."""
        if end <= start:
            raise ValidationFailed("to: must be later than from")
        if end - start > MAX_PERIOD:
            raise ValidationFailed(f"from, to: at most {MAX_PERIOD.days} days in one report")
        logged = await UsageRepository(session).messages_created(
            account.id, start=start - CONVERSATION, end=end
        )
        return _report(logged, start, end)

    async def conversation_minutes_left(
        self, session: AsyncSession, *, account_id: str, sender_id: str, to: str, now: datetime
    ) -> int:
        """Whole minutes left at `now` in the conversation between the sender and `to`
        (99digital's: 24 hours from the send that opened it); 0 when none is open.
        Sends of the two days before `now` are read: the report's rule, one conversation
        back."""
        logged = await UsageRepository(session).messages_created(
            account_id, start=now - 2 * CONVERSATION, end=now, to=to
        )
        sends = [
            send
            for message in logged
            for send in _sends(message, _state(message))
            if send[0] == sender_id and send[2] <= now
        ]
        began = conversation_starts(sends).get((sender_id, to))
        if not began or began[-1] + CONVERSATION <= now:
            return 0
        return int((began[-1] + CONVERSATION - now).total_seconds() // 60)


usage = UsageService()
