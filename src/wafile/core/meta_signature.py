"""Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256 of the
raw request body keyed with the app secret. Verify the bytes as received: re-serialised
JSON differs (Meta escapes `/` and non-ASCII), so its signature would not match."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "hub_signature", "verify_hub_signature"]

SIGNATURE_HEADER = "X-Hub-Signature-256"


def hub_signature(app_secret: str, body: bytes) -> str:
    """The header value Meta sends for `body`: `sha256=` and the lowercase hex digest."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hub_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `app_secret`.

    Compared in constant time; a missing header, another scheme or a malformed value is
    simply False, never an exception.
    """
    if not header:
        return False
    scheme, sep, digest = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    expected = hub_signature(app_secret, body).removeprefix("sha256=").encode()
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    return hmac.compare_digest(expected, digest.strip().lower().encode("utf-8", "replace"))
