"""Cloud API message bodies for a file, built from what wafile knows (pure).

Documents always carry a filename (never WhatsApp's "Untitled"), captions are checked
against Meta's limit before anything is sent, and audio and stickers, which take no
caption, never get one. Template sends put the file in the header, keeping its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CAPTIONED",
    "CAPTION_MAX",
    "TEMPLATE_HEADERS",
    "InvalidMessage",
    "TemplateRef",
    "file_message",
    "template_message",
]

CAPTION_MAX = 1024
CAPTIONED = frozenset({"image", "video", "document"})
MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})
# What a template's media header can carry; document headers take PDF only (Meta).
TEMPLATE_HEADERS = frozenset({"image", "video", "document"})


class InvalidMessage(ValueError):
    """The message cannot be sent as asked; the text says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TemplateRef:
    name: str
    language: str
    body_parameters: Sequence[str] = ()


def file_message(
    *,
    to: str,
    kind: str,
    media_id: str,
    filename: str,
    caption: str | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """A free-form message carrying an uploaded file, `kind` being how it travels."""
    if kind not in MEDIA_KINDS:
        raise InvalidMessage(f"WhatsApp cannot send a {kind!r}")
    content: dict[str, Any] = {"id": media_id}
    if kind == "document":
        content["filename"] = filename
    if caption:
        if kind not in CAPTIONED:
            raise InvalidMessage(f"WhatsApp shows no caption on {kind} messages")
        if len(caption) > CAPTION_MAX:
            raise InvalidMessage(f"the caption is longer than WhatsApp's {CAPTION_MAX} characters")
        content["caption"] = caption
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    }
    if reply_to:
        body["context"] = {"message_id": reply_to}
    return body


def template_message(
    *,
    to: str,
    template: TemplateRef,
    header_kind: str,
    media_id: str,
    filename: str,
    mime_type: str,
) -> dict[str, Any]:
    """An approved template with the file as its media header (filename kept)."""
    if header_kind not in TEMPLATE_HEADERS:
        raise InvalidMessage(f"a template header cannot carry a {header_kind}")
    if header_kind == "document" and mime_type != "application/pdf":
        raise InvalidMessage("WhatsApp template document headers take PDF files only")
    media: dict[str, Any] = {"id": media_id}
    if header_kind == "document":
        media["filename"] = filename
    components: list[dict[str, Any]] = [
        {"type": "header", "parameters": [{"type": header_kind, header_kind: media}]}
    ]
    if template.body_parameters:
        components.append(
            {
                "type": "body",
                "parameters": [{"type": "text", "text": p} for p in template.body_parameters],
            }
        )
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": template.name,
            "language": {"code": template.language},
            "components": components,
        },
    }
