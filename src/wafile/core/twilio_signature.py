"""Twilio's request signature: `X-Twilio-Signature`, the base64 HMAC-SHA1 (keyed with the
account's auth token) of the full URL followed by every POST parameter's name and value,
names sorted, each name's values sorted (and each distinct value once, as Twilio's own
validators do). Sign the URL exactly as configured: a re-built URL (another scheme,
host, port, or re-encoded query) signs differently."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SIGNATURE_HEADER", "Params", "twilio_signature", "verify_twilio_signature"]

SIGNATURE_HEADER = "X-Twilio-Signature"

# A form field may repeat (`MediaUrl`): give its values as a sequence.
Params = Mapping[str, str | Sequence[str]]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def _signed_text(url: str, params: Params) -> str:
    parts = [url]
    for name in sorted(params):
        value = params[name]
        values = [value] if isinstance(value, str) else list(value)
        parts.extend(name + v for v in sorted(set(values)))
    return "".join(parts)


def twilio_signature(auth_token: str, url: str, params: Params) -> str:
    """The `X-Twilio-Signature` value for a form POST of `params` to `url`."""
    text = _signed_text(url, params)
    mac = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """`url` as given, then with the scheme's default port added or removed: Twilio
    is inconsistent about ports, so its validators accept either form."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or parts.hostname is None:
        return variants
    # Keep the host exactly as written (`hostname` would lower-case it).
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host = hostport.removesuffix(f":{port}") if port is not None else hostport
    if port is None:
        netloc = f"{userinfo}{at}{host}:{default}"
    elif port == default:
        netloc = f"{userinfo}{at}{host}"
    else:
        return variants
    variants.append(urlunsplit(parts._replace(netloc=netloc)))
    return variants


def verify_twilio_signature(auth_token: str, url: str, params: Params, header: str | None) -> bool:
    """True when `header` is Twilio's signature of `params` posted to `url`.

    Compared in constant time, with and without the default port in `url`. A missing
    or malformed header is simply False, never an exception.
    """
    if not header:
        return False
    given = header.strip().encode("utf-8", "replace")
    # Each variant is compared in full: no early exit that would time the first match.
    matches = [
        hmac.compare_digest(twilio_signature(auth_token, u, params).encode(), given)
        for u in _port_variants(url)
    ]
    return any(matches)
