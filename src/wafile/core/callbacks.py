"""Customer callbacks, the pure part: event types and filters, the event documents,
and when a failed delivery is tried again.

One `Notify` effect of the message state machine is one event. Its document carries
the whole message as `GET /v1/messages/{id}` shows it (without the event log) at the
moment of the event, so a receiver never has to call back to learn what happened.
A message a user sends in is one `inbound.received` event, carrying it as
`GET /v1/inbound` shows it (with its file, once the file is in the media store).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from wafile.core.callback_formats import RETRY_SCHEDULE, STANDARD
from wafile.core.inbound import Inbound
from wafile.core.message import Message
from wafile.core.message_state import AttemptStatus, MessageState, MessageStatus, Notify

__all__ = [
    "ALL_EVENTS",
    "EVENT_TYPES",
    "INBOUND_RECEIVED",
    "RETRY_JITTER",
    "RETRY_SCHEDULE",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Endpoint",
    "event_document",
    "filter_matches",
    "inbound_document",
    "inbound_event_document",
    "invalid_filters",
    "message_document",
    "retry_delay",
]

ALL_EVENTS: Final = "*"
INBOUND_RECEIVED: Final = "inbound.received"  # a user's message came in
# Every type an event can have: `message.<status>`, `attempt.<status>` and inbound's.
EVENT_TYPES: Final = frozenset(
    {f"message.{s}" for s in MessageStatus}
    | {f"attempt.{s}" for s in AttemptStatus}
    | {INBOUND_RECEIVED}
)
_WILDCARDS: Final = frozenset({ALL_EVENTS, "message.*", "attempt.*", "inbound.*"})

# Each delay is shortened by a random share of up to this much, so deliveries that
# failed together (a receiver outage) spread out instead of returning in one burst.
RETRY_JITTER: Final = 0.2


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not delivered yet; automatic attempts remain
    DELIVERED = "delivered"  # a 2xx came back
    FAILED = "failed"  # automatic attempts used up (or the target refused); kept


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """An account's webhook endpoint (its secret stays sealed in the database)."""

    id: str
    account_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    failures_since: datetime | None  # first failed attempt since the last success
    failing_since: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    format: str = STANDARD  # core.callback_formats: what it receives, how it is signed

    @property
    def failing(self) -> bool:
        return self.failing_since is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryAttempt:
    number: int
    manual: bool
    requested_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int
    response: str | None  # the start of the response body


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One event to one target: an endpoint, or the message's callback_url (None).

    The event is of a message (`message_id`, ordered by `sequence`) or of an inbound
    message (`inbound_id`; `sequence` 0: inbound events have no order of their own).
    """

    id: str
    account_id: str
    endpoint_id: str | None
    message_id: str | None
    url: str
    event_id: str
    event_type: str
    sequence: int
    body: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    inbound_id: str | None = None


def invalid_filters(filters: Iterable[str]) -> list[str]:
    """The filters that name no event type: `*`, `message.*`, `attempt.*`, `inbound.*`
    or a type."""
    return [f for f in filters if f not in _WILDCARDS and f not in EVENT_TYPES]


def filter_matches(filters: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint with these filters receives `event_type` (none: all)."""
    if not filters:
        return True
    subject = event_type.split(".", 1)[0]
    return any(f in (ALL_EVENTS, event_type, f"{subject}.*") for f in filters)


def retry_delay(attempts: int, schedule: Sequence[float], rand: float) -> timedelta | None:
    """How long after automatic attempt number `attempts` (1-based) the next one runs;
    None when the schedule is used up. `rand` in [0, 1) shortens it by the jitter."""
    if attempts < 1 or attempts >= len(schedule):
        return None
    delay = schedule[attempts]
    return timedelta(seconds=delay * (1 - RETRY_JITTER * rand))


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_document(
    message: Message, state: MessageState, *, updated_at: datetime
) -> dict[str, Any]:
    """The message as the API shows it (same field names), without its event log."""
    return {
        "id": message.id,
        "status": str(state.status),
        "to": message.to,
        "sender_id": message.sender_id,
        "media_id": message.media_id,
        "media_url": message.media_url,
        "filename": message.filename,
        "caption": message.caption,
        "reference": message.reference,
        "origin": message.origin,
        "reason": state.reason,
        "created_at": _iso(message.created_at),
        "updated_at": _iso(updated_at),
        "attempts": [
            {
                "number": a.number,
                "channel": str(a.channel),
                "status": str(a.status),
                "late": a.late,
                "sender_id": message.plan[a.number].sender_id,
                "provider_message_id": a.provider_id,
                "segments": a.segments,
                "error_code": a.error_code,
                "error": a.error,
                "queued_at": _iso(a.queued_at),
                "sent_at": _iso(a.sent_at),
                "delivered_at": _iso(a.delivered_at),
                "read_at": _iso(a.read_at),
                "ended_at": _iso(a.ended_at),
            }
            for a in state.attempts
        ],
    }


def event_document(event_id: str, notice: Notify, message: dict[str, Any]) -> dict[str, Any]:
    """One callback event: what changed, and the whole message after the change."""
    return {
        "id": event_id,
        "type": notice.type,
        "sequence": notice.sequence,
        "subject": str(notice.subject),
        "attempt": notice.attempt,
        "previous": str(notice.previous) if notice.previous is not None else None,
        "status": str(notice.status),
        "late": notice.late,
        "at": _iso(notice.at),
        "message": message,
    }


def inbound_document(inbound: Inbound) -> dict[str, Any]:
    """The inbound message as `GET /v1/inbound` shows it (same field names)."""
    return {
        "id": inbound.id,
        "sender_id": inbound.sender_id,
        "provider_message_id": inbound.provider_id,
        "from_number": inbound.from_number,
        "profile_name": inbound.profile_name,
        "type": inbound.type,
        "text": inbound.text,
        "caption": inbound.caption,
        "filename": inbound.media_filename,
        "mime_type": inbound.media_mime_type,
        "provider_media_id": inbound.provider_media_id,
        "media_id": inbound.media_id,
        "media_error": inbound.media_error,
        "reply_to": inbound.reply_to,
        "received_at": _iso(inbound.received_at),
    }


def inbound_event_document(
    event_id: str,
    inbound: Inbound,
    *,
    to: str,
    media_link: tuple[str, datetime] | None,
    conversation_minutes_left: int = 0,
) -> dict[str, Any]:
    """One `inbound.received` event: the message a user sent to the sender whose number
    is `to` (E.164), and a signed download link to its file (url, expiry) when it has
    one in the media store, so a receiver without an API key can fetch it too. With
    the minutes then left in the sender's 24-hour conversation with the user (the
    billing unit of the usage report; 0: none open)."""
    url, expires = media_link if media_link is not None else (None, None)
    return {
        "id": event_id,
        "type": INBOUND_RECEIVED,
        "at": _iso(inbound.received_at),
        "to": to,
        "inbound": inbound_document(inbound),
        "media_url": url,
        "media_url_expires_at": _iso(expires),
        "conversation_minutes_left": conversation_minutes_left,
    }
