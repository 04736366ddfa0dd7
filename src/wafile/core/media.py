"""The media object: a file wafile holds, checked, and knows how to send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Media", "blob_key"]


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

    @property
    def blob_key(self) -> str:
        return blob_key(self.sha256)


def blob_key(sha256: str) -> str:
    """Blobs are stored by content: one object per distinct file."""
    return f"blobs/{sha256[:2]}/{sha256}"
