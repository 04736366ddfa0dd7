"""99digital's status webhooks (`readStatus: 1`), from wafile's event document.

99digital posts its webhooks as JSON with `"status": "OK"` and a `hook` that names the
kind: `"new"` for an incoming message (not an event of a sent message: see
docs/dialects.md), and, with `readStatus` on, one per WhatsApp status of a message the
business sent. Its page names no fields for those; wafile sends the incoming hook's
family: `hook` is the status (`sent`, `delivered`, `read`, and `failed` with an
`error`), `unique` is the sendFile/sendTemplate answer's `unique`, `to` the client's
number as digits and `timestamp` Unix seconds as a string. Only the WhatsApp attempt is
reported: 99digital sends nothing else. 99digital does not sign its webhooks (it
publishes the IPs they come from): the endpoint signs the Standard Webhooks way, which
a 99digital receiver may ignore.

99digital retries a webhook that did not get a 200 within 5 s only when `retry` is 1:
at once, then after 5 min, 20 min, 1 h, 4 h and 24 h (`RETRY_SCHEDULE`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

__all__ = ["FORMAT", "HOOKS", "RETRY_SCHEDULE", "build"]

FORMAT: Final = "99digital"
# Attempt statuses that 99digital reports, as its `hook` values.
HOOKS: Final = frozenset({"sent", "delivered", "read", "failed"})
# Seconds before automatic attempt n+1 with `retry: 1` (core.callbacks.RETRY_SCHEDULE's shape).
RETRY_SCHEDULE: Final[tuple[float, ...]] = (0, 5 * 60, 20 * 60, 3600, 4 * 3600, 24 * 3600)


def build(event: dict[str, Any]) -> dict[str, Any] | None:
    """One hook per WhatsApp status after the send was accepted; None for the rest."""
    status = event.get("status")
    if not str(event.get("type", "")).startswith("attempt.") or status not in HOOKS:
        return None
    message = event["message"]
    attempt = next((a for a in message["attempts"] if a["number"] == event["attempt"]), None)
    if attempt is None or attempt["channel"] != "whatsapp":
        return None
    body: dict[str, Any] = {
        "status": "OK",
        "hook": status,
        "unique": message["id"],
        "to": str(message["to"]).lstrip("+"),
        "timestamp": _unix(event["at"]),
    }
    if status == "failed":
        body["error"] = attempt["error"] or "the message was not delivered"
    return body


def _unix(iso: str) -> str:
    """99digital's webhook timestamps: Unix seconds as a string."""
    return str(int(datetime.fromisoformat(iso).timestamp()))
