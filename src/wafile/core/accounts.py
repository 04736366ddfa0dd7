"""Accounts (tenants) and the API keys that act for them, as immutable values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "ACCOUNT_NAME_MAX",
    "LAST_USED_RESOLUTION",
    "Account",
    "ApiKey",
    "check_account_name",
    "check_key_name",
    "needs_last_used_update",
]

ACCOUNT_NAME_MAX = 64
KEY_NAME_MAX = 200
_ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# `last_used_at` is written at most this often per key, so authentication does not
# turn every read request into a database write (SQLite has one writer).
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class Account:
    id: str
    name: str
    created_at: datetime
    # The channel plan of a send that gives none, in the API's `channels` shape
    # (sender names, not ids); None: WhatsApp only.
    default_channels: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiKey:
    id: str  # the public id inside the key
    account_id: str
    account_name: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_account_name(name: str) -> str:
    """The name if valid; `ValueError` saying why otherwise."""
    if not 1 <= len(name) <= ACCOUNT_NAME_MAX:
        raise ValueError(f"account name must be 1 to {ACCOUNT_NAME_MAX} characters")
    if not _ACCOUNT_NAME_RE.match(name):
        raise ValueError(
            "account name may hold only letters, digits, '.', '-' and '_', "
            "and must start with a letter or digit"
        )
    return name


def check_key_name(name: str) -> str:
    name = name.strip()
    if len(name) > KEY_NAME_MAX:
        raise ValueError(f"key name must be at most {KEY_NAME_MAX} characters")
    if any(ch in name for ch in "\r\n\t\x00"):
        raise ValueError("key name must be a single line")
    return name


def needs_last_used_update(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION
