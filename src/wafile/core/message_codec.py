"""A message's events as JSON: the event log is the message's record of truth, and
its state is rebuilt by replaying the log through `message_state.transition`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wafile.core.message_state import (
    Accepted,
    AttemptStatus,
    DeadlineReached,
    Event,
    SendFailed,
    SendSucceeded,
    StatusReport,
)
from wafile.core.provider_errors import Disposition

__all__ = ["event_from_json", "event_to_json"]

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
