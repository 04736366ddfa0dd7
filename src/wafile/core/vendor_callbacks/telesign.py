"""Telesign's Messaging (omnichannel) delivery callbacks, from wafile's event document.

A Telesign transaction is one wafile message; its `reference_id` is the message id's
128 bits as 32 upper-case hex digits (a wafile id is 48 bits of milliseconds and 80
random bits, so the mapping goes both ways and needs no table). Each channel tried is
an attempt; its own `reference_id` is derived from the message's and the attempt's
number. The body carries the transaction's status (the message's, or its current
channel's while it is under way), `last_channel`, and one `channel_status` item per
channel tried, as on Telesign's page.

Signed as Telesign signs: `X-TS-Authorization` and `Authorization: TSA
<customer_id>:<sig>`, `<sig>` = base64(HMAC-SHA256(key, raw body)). The customer id is
the one the dialect's clients authenticate with (`customer_id`: the account's name).
Telesign keys the MAC with the base64-decoded API key, which wafile never keeps in
clear; wafile keys it with the endpoint's secret (or, for a per-send `callback_url`,
the account's callback secret), base64-decoded the same way (the part after `whsec_`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Final

from wafile.core.accounts import Account

__all__ = [
    "FORMAT",
    "IN_PROGRESS",
    "build",
    "channel_reference_id",
    "customer_id",
    "message_id_for",
    "reference_id_for",
    "sign",
    "signature",
    "status_body",
    "updated_on",
]

FORMAT: Final = "telesign"
_ID_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"  # wafile.ids: Crockford base32
_ID_CHARS: Final = 26
_MESSAGE_PREFIX: Final = "msg_"

IN_PROGRESS: Final = (3001, "Message in progress")
_DELIVERED: Final = (3000, "Delivered")
_READ: Final = (3005, "Message is read")
_GATEWAY: Final = (3002, "Delivered to Gateway")
_TIMED_OUT: Final = (3056, "Message failed to deliver in specified fallback time")
_ERROR: Final = (3003, "Delivery error")
# Provider codes with a closer Telesign status than "Delivery error".
_FAILURES: Final[dict[int, tuple[int, str]]] = {
    131026: (3055, "Delivery channel not supported by the end user's device"),
    131047: (3114, "Specified message type not allowed outside of conversation window"),
    131053: (3035, "Invalid/unsupported"),
}


def reference_id_for(message_id: str) -> str:
    """The Telesign `reference_id` of a wafile message id."""
    value = 0
    for char in message_id.removeprefix(_MESSAGE_PREFIX):
        value = value * 32 + _ID_ALPHABET.index(char)
    return f"{value:032X}"


def message_id_for(reference_id: str) -> str | None:
    """The wafile message id a `reference_id` stands for; None if it cannot be one."""
    if len(reference_id) != 32:
        return None
    try:
        value = int(reference_id, 16)
    except ValueError:
        return None
    chars = []
    for _ in range(_ID_CHARS):
        chars.append(_ID_ALPHABET[value & 31])
        value >>= 5
    return _MESSAGE_PREFIX + "".join(reversed(chars))


def channel_reference_id(message_id: str, attempt: int) -> str:
    """The `reference_id` of one channel's send: stable, distinct per attempt."""
    digest = hashlib.sha256(f"{message_id}/{attempt}".encode()).hexdigest()
    return digest[:32].upper()


def updated_on(at: datetime) -> str:
    """Telesign's `updated_on`: "2020-05-04 22:05:00.325" (UTC, milliseconds)."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def _timestamp(iso: str | None) -> str | None:
    if iso is None:
        return None
    return updated_on(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def _attempt_status(attempt: dict[str, Any]) -> tuple[int, str]:
    status = attempt["status"]
    if status == "queued":
        return IN_PROGRESS
    if status == "sent":
        return _GATEWAY
    if status == "delivered":
        return _DELIVERED
    if status == "read":
        return _READ
    if status == "timed_out":
        return _TIMED_OUT
    return _FAILURES.get(attempt.get("error_code") or 0, _ERROR)


def _attempt_updated(attempt: dict[str, Any]) -> str | None:
    # ISO 8601 in UTC ("...Z") sorts as text.
    latest = [
        str(attempt[k])
        for k in ("queued_at", "sent_at", "delivered_at", "read_at", "ended_at")
        if attempt.get(k)
    ]
    return _timestamp(max(latest)) if latest else None


def status_body(message: dict[str, Any], *, updated_at: str | None) -> dict[str, Any]:
    """The transaction's status as Telesign reports it (callback and status lookup)."""
    attempts = message["attempts"]
    last = attempts[-1] if attempts else None
    if message["status"] == "delivered":
        code = _DELIVERED
    elif message["status"] == "read":
        code = _READ
    elif last is not None:
        # Failed: the last channel's failure; under way: where the current channel is.
        code = _attempt_status(last)
    else:
        code = IN_PROGRESS
    return {
        "reference_id": reference_id_for(message["id"]),
        "external_id": message.get("reference"),
        "status": {
            "code": code[0],
            "description": code[1],
            "last_channel": last["channel"] if last is not None else None,
            "updated_on": _timestamp(updated_at),
        },
        "channel_status": [
            {
                a["channel"]: {
                    "code": _attempt_status(a)[0],
                    "description": _attempt_status(a)[1],
                    "reference_id": channel_reference_id(message["id"], a["number"]),
                    "updated_on": _attempt_updated(a),
                }
            }
            for a in attempts
        ],
    }


def build(event: dict[str, Any]) -> dict[str, Any] | None:
    """A callback for each change of a channel's status (not for a channel just queued:
    Telesign's send response already said "in progress"); message-level events repeat
    what the attempt's event says, so they send nothing."""
    if not str(event.get("type", "")).startswith("attempt.") or event["status"] == "queued":
        return None
    return status_body(event["message"], updated_at=event.get("at"))


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode()


def signature(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(base64-decoded secret, raw body)): Telesign's callback MAC."""
    return base64.b64encode(hmac.new(_key(secret), body, hashlib.sha256).digest()).decode()


def customer_id(account: Account) -> str:
    """The account's Telesign customer id, as its callbacks name it: its name, which is
    what the docs and `make run` give in `Basic <customer_id>:<api_key>` (the dialect
    takes the account's id too, but a name is what a client configures and compares);
    never a secret."""
    return account.name


def sign(body: bytes, secret: str, event_id: str, at: datetime, account: Account) -> dict[str, str]:
    """Both headers Telesign sends; the body alone is signed (no date, no nonce)."""
    mac = signature(body, secret)
    return {"Authorization": f"TSA {customer_id(account)}:{mac}", "X-TS-Authorization": mac}
