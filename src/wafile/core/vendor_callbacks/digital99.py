"""99digital's webhooks, from wafile's event documents.

99digital posts its webhooks as JSON with `"status": "OK"` and a `hook` that names the
kind. `"new"` is an incoming message (`inbound.received`), in the payload its webhook
page shows (`new_message`). With `readStatus` on, there is also one per WhatsApp
status of a message the business sent. Its page names no fields for those; wafile
sends the incoming hook's family: `hook` is the status (`sent`, `delivered`, `read`,
and `failed` with an `error`), `unique` is the sendFile/sendTemplate answer's `unique`,
`to` the client's number as digits and `timestamp` Unix seconds as a string. Only the
WhatsApp attempt is reported: 99digital sends nothing else. 99digital does not sign its
webhooks (it publishes the IPs they come from): the endpoint signs the Standard
Webhooks way, which a 99digital receiver may ignore.

99digital retries a webhook that did not get a 200 within 5 s (with `retry: 1`): it
retries at once, then after 5 min, 20 min, 1 h, 4 h and 24 h (`RETRY_SCHEDULE`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final

import phonenumbers

__all__ = ["FORMAT", "HOOKS", "INBOUND_TYPES", "RETRY_SCHEDULE", "build", "from_id", "new_message"]

FORMAT: Final = "99digital"
# Attempt statuses that 99digital reports, as its `hook` values.
HOOKS: Final = frozenset({"sent", "delivered", "read", "failed"})
# Seconds before automatic attempt n+1 (core.callback_formats.RETRY_SCHEDULE's shape):
# the first try, a retry at once, then 5 min, 20 min, 1 h, 4 h and 24 h later.
RETRY_SCHEDULE: Final[tuple[float, ...]] = (0, 0, 5 * 60, 20 * 60, 3600, 4 * 3600, 24 * 3600)
# WhatsApp's message types as 99digital names them (the rest keep WhatsApp's name).
INBOUND_TYPES: Final = {"sticker": "image", "interactive": "button"}
_FILES: Final = frozenset({"image", "audio", "video", "document", "sticker"})


def build(event: dict[str, Any]) -> dict[str, Any] | None:
    """The `new` hook for an incoming message; one hook per WhatsApp status after the
    send was accepted; None for the rest."""
    if event.get("type") == "inbound.received":
        return new_message(event)
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


def new_message(event: dict[str, Any]) -> dict[str, Any]:
    """The `"hook": "new"` payload of 99digital's webhook page for an `inbound.received`
    event. `unique` is WhatsApp's message id (what sendFile's `replyTo` takes); a file's
    `body` is wafile's signed download link; wafile keeps no profile pictures."""
    inbound = event["inbound"]
    number = str(inbound["from_number"]).lstrip("+")
    kind = str(inbound["type"])
    has_file = kind in _FILES and event.get("media_url") is not None
    if kind == "text":
        body = inbound["text"] or ""
    elif has_file:
        body = event["media_url"]
    else:
        body = ""  # location, contacts, buttons...: wafile keeps only text and files
    return {
        "status": "OK",
        "hook": "new",
        "unique": inbound["provider_message_id"],
        "from": number,
        "from_id": from_id(inbound["sender_id"], inbound["from_number"]),
        "username": None,
        "country": _country(inbound["from_number"]),
        "phone": number,
        "to": str(event["to"]).lstrip("+"),
        "senderName": inbound["profile_name"],
        "type": INBOUND_TYPES.get(kind, kind),
        "body": body,
        "caption": inbound["caption"],
        "isForwarded": False,
        "timestamp": _unix(inbound["received_at"]),
        "media": has_file,
        "quote": inbound["reply_to"] is not None,
        "quoteUnique": inbound["reply_to"] or False,
        "profilePic": None,
        "conversationTimeLeft": str(event.get("conversation_minutes_left", 0)),
    }


def from_id(sender_id: str, number: str) -> str:
    """99digital's `from_id`: the country, a dot and 16 digits, stable per client and
    business number (a digest of the two, so it names nobody outside this account)."""
    digest = hashlib.sha256(f"{sender_id}\n{number}".encode()).digest()
    digits = int.from_bytes(digest[:8], "big") % 10**16
    return f"{_country(number) or 'XX'}.{digits:016d}"


def _country(number: str) -> str | None:
    """The two-letter region of an E.164 number (None if it has none)."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None
