"""API key format, parsing and verification (pure).

A key reads `wfk_<public id>_<secret>`: the public id (12 lowercase hex characters)
finds the stored row, the secret (48 lowercase hex characters, 192 bits) is checked
against its SHA-256. A fast hash is right here: the secret is random and long, so
there is nothing to brute-force, and each request verifies a key. The key itself is
shown once and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = [
    "KEY_PREFIX",
    "PUBLIC_ID_LEN",
    "SECRET_LEN",
    "ParsedKey",
    "display_prefix",
    "format_key",
    "hash_secret",
    "parse_key",
    "redact_keys",
    "verify_secret",
]

KEY_PREFIX = "wfk"
PUBLIC_ID_LEN = 12
SECRET_LEN = 48

_KEY_RE = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{{PUBLIC_ID_LEN}}})_([0-9a-f]{{{SECRET_LEN}}})$")
# Anything that looks like a key, even malformed, for scrubbing text before it is logged.
_LOOSE_KEY_RE = re.compile(rf"\b{KEY_PREFIX}_([0-9A-Za-z]{{1,64}})_[0-9A-Za-z]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class ParsedKey:
    public_id: str
    secret: str = ""

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"ParsedKey(public_id={self.public_id!r}, secret='***')"


def format_key(public_id: str, secret: str) -> str:
    key = f"{KEY_PREFIX}_{public_id}_{secret}"
    if not _KEY_RE.match(key):
        raise ValueError("public id or secret has the wrong shape")
    return key


def parse_key(raw: str) -> ParsedKey | None:
    """The parts of a well-formed key, or None for anything else."""
    match = _KEY_RE.match(raw.strip())
    if match is None:
        return None
    return ParsedKey(public_id=match.group(1), secret=match.group(2))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def verify_secret(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def display_prefix(public_id: str) -> str:
    """What lists show of a key: enough to recognise it, useless to an attacker."""
    return f"{KEY_PREFIX}_{public_id}"


def redact_keys(text: str) -> str:
    """Replace the secret part of anything key-shaped with `***`."""
    return _LOOSE_KEY_RE.sub(lambda m: f"{KEY_PREFIX}_{m.group(1)}_***", text)
