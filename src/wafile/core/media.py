"""The media object: a file wafile holds, checked, and knows how to send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["BLOB_PREFIX", "UPLOAD_PREFIX", "Media", "blob_key", "blob_sha256"]

BLOB_PREFIX = "blobs"
UPLOAD_PREFIX = "uploads"  # uploads in flight, before their hash names them
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, kw_only=True, slots=True)
class Media:
    id: str
    account_id: str
    filename: str  # display name only, exactly as given; never a storage path
    mime_type: str
    category: str
    sha256: str
    file_size: int
    created_at: datetime
    expires_at: datetime
    whatsapp_sendable: bool
    whatsapp_sent_as: str | None
    whatsapp_reason: str
    source_url: str | None = None  # the URL it was fetched from; None for an upload

    @property
    def blob_key(self) -> str:
        return blob_key(self.sha256)


def blob_key(sha256: str) -> str:
    """Blobs are stored by content: one object per distinct file."""
    return f"{BLOB_PREFIX}/{sha256[:2]}/{sha256}"


def blob_sha256(key: str) -> str | None:
    """The content hash a blob key names, or None when the key is not a blob's."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != BLOB_PREFIX:
        return None
    sha256 = parts[2]
    if len(sha256) != 64 or not set(sha256) <= _HEX or parts[1] != sha256[:2]:
        return None
    return sha256
