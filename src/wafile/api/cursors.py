"""Opaque page cursors: the (created_at, id) of the last item a page showed, and the
page itself: a list asks for `limit + 1` rows, and the extra one says there is more."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from wafile.errors import ValidationFailed

__all__ = ["decode_cursor", "encode_cursor", "page_of"]

T = TypeVar("T")


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


def page_of(
    rows: Sequence[T], limit: int, key: Callable[[T], tuple[datetime, str]]
) -> tuple[list[T], str | None]:
    """The page (the first `limit` of `rows`, fetched as `limit + 1`) and the cursor of
    the next one, None when this is the last; `key` is an item's (time, id)."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, encode_cursor(*key(page[-1]))
