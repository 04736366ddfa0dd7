"""Meta's webhook envelope to wafile's events: inbound messages and delivery statuses.

Pure: bytes in, values out. Meta batches several entries, changes, messages and
statuses in one POST and adds fields over time, so unknown fields and other `field`
kinds are skipped; a body that is not the envelope at all is a `MalformedWebhook`.
Times are Meta's unix seconds (strings) as aware datetimes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "InboundMedia",
    "InboundMessage",
    "MalformedWebhook",
    "StatusUpdate",
    "WebhookBatch",
    "parse_webhook",
]

MEDIA_TYPES = frozenset({"document", "image", "video", "audio", "sticker"})
STATUSES = frozenset({"sent", "delivered", "read", "failed"})


class MalformedWebhook(ValueError):
    """The body is not a WhatsApp Business Account webhook."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundMedia:
    provider_id: str  # Meta's media id, valid for 7 days
    mime_type: str | None
    sha256: str | None
    filename: str | None
    caption: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundMessage:
    phone_number_id: str
    provider_id: str  # wamid
    from_wa_id: str
    profile_name: str | None
    type: str
    text: str | None
    media: InboundMedia | None
    reply_to: str | None  # the wamid quoted (context.id)
    at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusUpdate:
    phone_number_id: str
    provider_id: str  # the wamid of the message this status is about
    status: str  # sent | delivered | read | failed
    recipient_wa_id: str
    at: datetime
    error_code: int | None
    error_title: str | None
    error_details: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookBatch:
    messages: tuple[InboundMessage, ...]
    statuses: tuple[StatusUpdate, ...]


def parse_webhook(body: bytes) -> WebhookBatch:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook("the body is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("object") != "whatsapp_business_account":
        raise MalformedWebhook("not a whatsapp_business_account webhook")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    for entry in _list(doc.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            change = _dict(change)
            if change.get("field") != "messages":
                continue  # template status, account updates...: not ours (yet)
            value = _dict(change.get("value"))
            pnid = str(_dict(value.get("metadata")).get("phone_number_id") or "")
            names = {
                str(c.get("wa_id")): _dict(c.get("profile")).get("name")
                for c in map(_dict, _list(value.get("contacts")))
            }
            for raw in map(_dict, _list(value.get("messages"))):
                if (message := _message(pnid, raw, names)) is not None:
                    messages.append(message)
            for raw in map(_dict, _list(value.get("statuses"))):
                if (status := _status(pnid, raw)) is not None:
                    statuses.append(status)
    return WebhookBatch(messages=tuple(messages), statuses=tuple(statuses))


def _message(pnid: str, raw: dict[str, Any], names: dict[str, Any]) -> InboundMessage | None:
    wamid, sender, kind = raw.get("id"), raw.get("from"), raw.get("type")
    at = _time(raw.get("timestamp"))
    if not (isinstance(wamid, str) and isinstance(sender, str) and isinstance(kind, str) and at):
        return None
    media = None
    content = _dict(raw.get(kind))
    if kind in MEDIA_TYPES and isinstance(content.get("id"), str):
        media = InboundMedia(
            provider_id=content["id"],
            mime_type=_str(content.get("mime_type")),
            sha256=_str(content.get("sha256")),
            filename=_str(content.get("filename")),
            caption=_str(content.get("caption")),
        )
    name = names.get(sender)
    return InboundMessage(
        phone_number_id=pnid,
        provider_id=wamid,
        from_wa_id=sender,
        profile_name=name if isinstance(name, str) else None,
        type=kind,
        text=_str(content.get("body")) if kind == "text" else None,
        media=media,
        reply_to=_str(_dict(raw.get("context")).get("id")),
        at=at,
    )


def _status(pnid: str, raw: dict[str, Any]) -> StatusUpdate | None:
    wamid, status, recipient = raw.get("id"), raw.get("status"), raw.get("recipient_id")
    at = _time(raw.get("timestamp"))
    if not (isinstance(wamid, str) and status in STATUSES and isinstance(recipient, str) and at):
        return None
    error = _dict(next(iter(_list(raw.get("errors"))), None))
    code = error.get("code")
    return StatusUpdate(
        phone_number_id=pnid,
        provider_id=wamid,
        status=str(status),
        recipient_wa_id=recipient,
        at=at,
        error_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        error_title=_str(error.get("title")),
        error_details=_str(_dict(error.get("error_data")).get("details")),
    )


def _time(value: object) -> datetime | None:
    try:
        seconds = int(str(value))
        return datetime.fromtimestamp(seconds, UTC) if 0 < seconds < 2**36 else None
    except ValueError:
        return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
