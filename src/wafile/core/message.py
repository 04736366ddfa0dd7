"""The message as stored: what was asked for. What happened is its event log, and
the state that log comes to (its snapshot)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from wafile.core.callback_formats import STANDARD
from wafile.core.message_state import MessageState
from wafile.core.plan import Plan

__all__ = ["NATIVE", "Message", "Snapshot"]

# The origin of a message sent through the native API, the CLI or the dashboard; a
# dialect's messages carry the dialect's name (its vendor's endpoints get only those).
NATIVE: Final = "native"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A message's state after its event number `seq`, the last of its log."""

    state: MessageState
    seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    id: str
    account_id: str
    sender_id: str
    to: str  # E.164
    media_id: str | None  # None until `media_url` is fetched
    filename: str
    caption: str | None
    reply_to: str | None
    template: dict[str, Any] | None  # {name, language, parameters}
    reference: str | None
    callback_url: str | None
    idempotency_key: str | None
    request_hash: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    plan: Plan  # the channels it tries, in order, each with its sender
    media_url: str | None = None  # a remote file: the worker fetches it before sending
    provider: str | None = None  # the media provider whose credentials fetch it
    origin: str = NATIVE  # the API it came through: NATIVE or a dialect's name
    # What `callback_url` receives (core.callback_formats): a dialect's per-send URL
    # gets its vendor's callbacks.
    callback_format: str = STANDARD
    # Kept with every event; None for a message stored before snapshots (replay its log).
    snapshot: Snapshot | None = None
