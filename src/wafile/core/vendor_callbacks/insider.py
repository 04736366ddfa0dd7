"""Insider's status events, from wafile's event document.

Insider forwards what WhatsApp says about a message, tagged with the tracking `key` its
send returned: accepted by WhatsApp (`messages[].id`, the wamid), WhatsApp's status
changes (`statuses[]`, Meta's webhook items), and errors (Meta's Graph error object,
its message prefixed "(#code)"). Only the WhatsApp attempt is reported: an Insider send
has no other channel, and wafile's own message-level events add nothing to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

__all__ = ["FORMAT", "KEY_PREFIX", "build"]

FORMAT: Final = "insider"
KEY_PREFIX: Final = "whatsapp-"  # Insider's tracking keys look like "whatsapp-..."
GENERIC_ERROR: Final = 131000  # Meta's "Something went wrong", when no code is known


def build(event: dict[str, Any]) -> dict[str, Any] | None:
    if not str(event.get("type", "")).startswith("attempt."):
        return None
    message = event["message"]
    attempt = next(
        (a for a in message["attempts"] if a["number"] == event["attempt"]),
        None,
    )
    if attempt is None or attempt["channel"] != "whatsapp":
        return None
    key = KEY_PREFIX + message["id"]
    wa_id = str(message["to"]).lstrip("+")
    status = event["status"]
    if status == "sent":
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": message["to"], "wa_id": wa_id}],
            "messages": [{"id": attempt["provider_message_id"]}],
            "key": key,
        }
    if status in ("delivered", "read"):
        return {
            "messaging_product": "whatsapp",
            "statuses": [
                {
                    "id": attempt["provider_message_id"],
                    "status": status,
                    "timestamp": _unix(event["at"]),
                    "recipient_id": wa_id,
                }
            ],
            "key": key,
        }
    if status == "failed":
        code = attempt["error_code"] or GENERIC_ERROR
        return {
            "error": {
                "message": f"(#{code}) {attempt['error'] or 'the message was not delivered'}",
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": event["id"],
            },
            "key": key,
        }
    return None  # queued, timed_out: nothing WhatsApp would have said


def _unix(iso: str) -> str:
    """Meta's webhook timestamps: Unix seconds as a string."""
    return str(int(datetime.fromisoformat(iso).timestamp()))
