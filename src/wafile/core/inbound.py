"""A message a user sent in, as wafile keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Inbound"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Inbound:
    id: str
    account_id: str
    sender_id: str
    provider_id: str  # the provider's message id (WhatsApp's wamid)
    from_number: str  # E.164
    profile_name: str | None
    type: str  # text, document, image, ...
    text: str | None
    provider_media_id: str | None
    media_filename: str | None
    media_mime_type: str | None
    caption: str | None
    reply_to: str | None
    received_at: datetime
    media_id: str | None = None  # the file in wafile's media store, once fetched
    media_error: str | None = None  # why it could not be fetched
