"""A message's events, and its state snapshot, as JSON.

The event log is the message's record of truth: its state is the log replayed through
`message_state.transition`. The snapshot stored beside it is that state after the
last event, so that applying one more event needs no replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wafile.core.message import Snapshot
from wafile.core.message_state import (
    Accepted,
    Attempt,
    AttemptStatus,
    DeadlineReached,
    Event,
    MessageState,
    MessageStatus,
    SendFailed,
    SendSucceeded,
    StatusReport,
)
from wafile.core.plan import Channel, Plan
from wafile.core.provider_errors import Disposition

__all__ = ["event_from_json", "event_to_json", "snapshot_from_json", "snapshot_to_json"]

_KINDS: dict[type, str] = {
    Accepted: "accepted",
    SendSucceeded: "send_succeeded",
    SendFailed: "send_failed",
    StatusReport: "status_report",
    DeadlineReached: "deadline_reached",
}


def event_to_json(event: Event) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": _KINDS[type(event)], "at": event.at.isoformat()}
    for name in event.__slots__:
        if name == "at":
            continue
        value = getattr(event, name)
        doc[name] = str(value) if isinstance(value, (Disposition, AttemptStatus)) else value
    return doc


def event_from_json(doc: dict[str, Any]) -> Event:
    at = datetime.fromisoformat(doc["at"])
    kind = doc["kind"]
    if kind == "accepted":
        return Accepted(at=at)
    if kind == "send_succeeded":
        return SendSucceeded(
            at=at,
            attempt=doc["attempt"],
            provider_id=doc["provider_id"],
            segments=doc.get("segments"),
        )
    if kind == "send_failed":
        return SendFailed(
            at=at,
            attempt=doc["attempt"],
            disposition=Disposition(doc["disposition"]),
            code=doc["code"],
            reason=doc["reason"],
        )
    if kind == "status_report":
        disposition = doc.get("disposition")
        return StatusReport(
            at=at,
            attempt=doc["attempt"],
            status=AttemptStatus(doc["status"]),
            provider_code=doc.get("provider_code"),
            reason=doc.get("reason"),
            disposition=Disposition(disposition) if disposition else None,
        )
    if kind == "deadline_reached":
        return DeadlineReached(at=at, attempt=doc["attempt"])
    raise ValueError(f"unknown event kind {kind!r}")


_WHEN = ("queued_at", "sent_at", "delivered_at", "read_at", "ended_at")


def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The state without its plan (the message keeps that) and the event number."""
    state = snapshot.state
    return {
        "seq": snapshot.seq,
        "status": str(state.status),
        "delivered_by": state.delivered_by,
        "reason": state.reason,
        "sequence": state.sequence,
        "attempts": [_attempt_to_json(a) for a in state.attempts],
    }


def snapshot_from_json(plan: Plan, doc: dict[str, Any]) -> Snapshot:
    state = MessageState(
        plan=plan,
        status=MessageStatus(doc["status"]),
        attempts=tuple(_attempt_from_json(a) for a in doc["attempts"]),
        delivered_by=doc["delivered_by"],
        reason=doc["reason"],
        sequence=doc["sequence"],
    )
    return Snapshot(state=state, seq=doc["seq"])


def _attempt_to_json(attempt: Attempt) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in attempt.__slots__:
        value = getattr(attempt, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, (Channel, AttemptStatus)):
            value = str(value)
        doc[name] = value
    return doc


def _attempt_from_json(doc: dict[str, Any]) -> Attempt:
    values = dict(doc)
    for name in _WHEN:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["channel"] = Channel(values["channel"])
    values["status"] = AttemptStatus(values["status"])
    return Attempt(**values)
