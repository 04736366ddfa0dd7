"""What the emulator remembers: stored media, messages the business sent (each phone's
inbox), messages the phones sent, and their JSON for the control API."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from wafile.emulator.whatsapp.outgoing import TemplateRequest

__all__ = ["Inbound", "Media", "Outbound", "b64_sha256"]


def b64_sha256(data: bytes) -> str:
    """SHA-256 in base64, as Meta writes it in inbound webhooks."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass(kw_only=True, slots=True)
class Media:
    id: str
    owner: str  # phone_number_id it belongs to
    mime_type: str
    data: bytes
    filename: str | None
    created: float
    expires: float
    origin: str  # "upload" (the business) or "inbound" (a phone sent it)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(kw_only=True, slots=True)
class Outbound:
    """A message the business sent; what the phone received, and its status history."""

    id: str
    phone_number_id: str
    display_phone_number: str
    to: str
    type: str
    created: float
    window_open: bool  # the 24-hour window at the time of sending
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    media_id: str | None = None
    link: str | None = None
    template: TemplateRequest | None = None
    template_category: str | None = None
    reaction: tuple[str, str] | None = None
    context_message_id: str | None = None
    biz_opaque_callback_data: str | None = None
    # The file as the phone got it (uploaded media or the fetched link), once resolved.
    content: bytes | None = None
    mime_type: str | None = None
    status: str = "accepted"
    statuses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def media_kind(self) -> str | None:
        """The media category this message carries, if any."""
        if self.template is not None:
            kind = self.template.header_kind
            return kind if kind in {"document", "image", "video"} else None
        return self.type if self.media_id or self.link else None

    def to_json(self, file_url: str | None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "from": {
                "phone_number_id": self.phone_number_id,
                "display_phone_number": self.display_phone_number,
            },
            "type": self.type,
            "sent_at": self.created,
            "status": self.status,
            "statuses": list(self.statuses),
        }
        if self.text is not None:
            item["text"] = self.text
        if self.caption is not None:
            item["caption"] = self.caption
        if self.filename is not None:
            item["filename"] = self.filename
        if self.media_id is not None:
            item["media_id"] = self.media_id
        if self.link is not None:
            item["link"] = self.link
        if self.content is not None:
            item["mime_type"] = self.mime_type
            item["file_size"] = len(self.content)
            item["sha256"] = hashlib.sha256(self.content).hexdigest()
            item["file_url"] = file_url
        if self.template is not None:
            t = self.template
            header: dict[str, Any] | None = None
            if t.header_kind == "text":
                header = {"type": "text", "parameters": list(t.header_texts)}
            elif t.header_kind is not None:
                header = {"type": t.header_kind}
            item["template"] = {
                "name": t.name,
                "language": t.language,
                "category": self.template_category,
                "header": header,
                "body": list(t.body),
            }
        if self.reaction is not None:
            item["reaction"] = {"message_id": self.reaction[0], "emoji": self.reaction[1]}
        if self.context_message_id is not None:
            item["context"] = {"message_id": self.context_message_id}
        if self.biz_opaque_callback_data is not None:
            item["biz_opaque_callback_data"] = self.biz_opaque_callback_data
        return item


@dataclass(kw_only=True, slots=True)
class Inbound:
    """A message a phone sent to a business number."""

    id: str
    phone_number_id: str
    sender: str  # the phone's number (digits)
    type: str
    timestamp: float
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    media_id: str | None = None
    context_message_id: str | None = None
    read: bool = False  # the business marked it read
    webhook_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "to": self.phone_number_id,
            "type": self.type,
            "timestamp": self.timestamp,
            "read_by_business": self.read,
            "webhook_id": self.webhook_id,
        }
        for key in ("text", "caption", "filename", "mime_type", "media_id"):
            value = getattr(self, key)
            if value is not None:
                item[key] = value
        if self.context_message_id is not None:
            item["context"] = {"message_id": self.context_message_id}
        return item
