"""Opaque page cursors: the (created_at, id) of the last item a page showed."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from wafile.errors import ValidationFailed

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(at: datetime, item_id: str) -> str:
    raw = json.dumps([at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        return datetime.fromisoformat(at), str(item_id)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("cursor is not one this server gave out") from exc
