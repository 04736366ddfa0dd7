"""Sinch's (legacy WhatsApp API) delivery reports, from wafile's event document.

One callback per change of the WhatsApp attempt: `{"type": "whatsapp", "statuses":
[{"message_id", "recipient", "status", "state"}]}`, the shape of the send's own 201
answer. A Sinch message id is a 26-character upper-case ULID; a wafile message id is
`msg_` and 26 lower-case characters of the same alphabet, so the one maps to the
other by case. Sinch's optional signature is not documented well enough to copy: the
endpoint signs the Standard Webhooks way. Failed deliveries are retried on Sinch's own
schedule (`RETRY_SCHEDULE`).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["FORMAT", "RETRY_SCHEDULE", "build", "message_id_for", "sinch_id", "state_of"]

FORMAT: Final = "sinch"
# Sinch's callback page: the first retry 5 s after the first try, then 10 s, 20 s, 40 s
# ... doubling, the last at 81920 s (22 h 45 min) after the first failure (5 s * 2**k,
# k = 0..13: 81915 s in all). Seconds before automatic attempt n+1.
RETRY_SCHEDULE: Final[tuple[float, ...]] = (0, *(5.0 * 2**k for k in range(14)))
_PREFIX: Final = "msg_"
_STATES: Final = {
    "queued": "queued",
    "sent": "dispatched",
    "delivered": "delivered",
    "read": "read",
    "timed_out": "failed",
    "failed": "failed",
}
NOT_ON_WHATSAPP: Final = 131026  # Meta's "not a WhatsApp user": Sinch's no_capability


def sinch_id(message_id: str) -> str:
    """The Sinch `message_id` of a wafile message."""
    return message_id.removeprefix(_PREFIX).upper()


def message_id_for(sinch_message_id: str) -> str:
    """The wafile message id of a Sinch `message_id`."""
    return _PREFIX + sinch_message_id.lower()


def state_of(attempt: dict[str, Any]) -> tuple[str, str]:
    """(status, state) of a WhatsApp attempt as Sinch reports them."""
    status = attempt["status"]
    if status == "failed" and attempt.get("error_code") == NOT_ON_WHATSAPP:
        return "failure", "no_capability"
    state = _STATES.get(status, "failed")
    return ("failure" if state == "failed" else "success"), state


def build(event: dict[str, Any]) -> dict[str, Any] | None:
    """A report for each change of the WhatsApp attempt after it was queued (the send's
    answer said `queued`); other channels and message-level events send nothing."""
    if not str(event.get("type", "")).startswith("attempt.") or event["status"] == "queued":
        return None
    message = event["message"]
    attempt = next((a for a in message["attempts"] if a["number"] == event["attempt"]), None)
    if attempt is None or attempt["channel"] != "whatsapp":
        return None
    status, state = state_of(attempt)
    return {
        "type": "whatsapp",
        "statuses": [
            {
                "message_id": sinch_id(message["id"]),
                "recipient": message["to"],
                "status": status,
                "state": state,
            }
        ],
    }
