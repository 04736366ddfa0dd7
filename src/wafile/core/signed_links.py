"""Signed download links: an HMAC over (purpose, id, expiry) with a key derived from
the server secret. Anyone holding the link can download until it expires; changing
any part of it, or the server secret, invalidates it."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["derive_key", "link_signature", "verify_link"]


def derive_key(secret: str, purpose: str) -> bytes:
    """A separate key per purpose, so a signature made for one use never fits another."""
    return hmac.new(secret.encode(), f"wafile/{purpose}".encode(), hashlib.sha256).digest()


def link_signature(key: bytes, resource_id: str, expires: int) -> str:
    mac = hmac.new(key, f"{resource_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify_link(key: bytes, resource_id: str, expires: int, signature: str, now: float) -> bool:
    """True when the signature is right and `expires` (unix seconds) is still ahead."""
    expected = link_signature(key, resource_id, expires)
    return hmac.compare_digest(expected, signature) and now < expires
