"""Media providers (Sinch's model): named credentials for fetching a customer's files.

A provider belongs to one account and has a name unique in it (letters, `-` and `_`,
at most 200 characters, as Sinch's page says; reusing a name replaces the provider).
It holds Basic (username + password) or Bearer (token) credentials; the secret half
is kept apart (`ProviderSecret`), sealed at rest and never shown.

`allowed` optionally restricts where the credential may go: host names
(`files.example.com`, `*.example.com`) or URL prefixes
(`https://files.example.com/exports/`). When given, a fetch with this provider to any
other URL is refused; when empty, the credential goes to the host of the URL asked
for. Either way it never follows a redirect to another host.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = [
    "MAX_ALLOWED",
    "PROVIDER_NAME_MAX",
    "PROVIDER_TYPE",
    "Auth",
    "Credential",
    "Provider",
    "ProviderSecret",
    "allows",
    "check_allowed",
    "check_credentials",
    "check_provider_name",
    "same_origin",
]

PROVIDER_NAME_MAX: Final = 200
PROVIDER_TYPE: Final = "www"  # the only type Sinch defines
MAX_ALLOWED: Final = 20
_MAX_SECRET: Final = 4096
_NAME_RE: Final = re.compile(r"^[A-Za-z_-]+$")
_HOST_RE: Final = re.compile(r"^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")


class Auth(StrEnum):
    BASIC = "basic"
    BEARER = "bearer"


@dataclass(frozen=True, kw_only=True, slots=True)
class Provider:
    id: str
    account_id: str
    name: str
    type: str
    auth: Auth
    username: str | None  # Basic only; not a secret
    allowed: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderSecret:
    value: str = field(repr=False)  # the Basic password or the Bearer token


@dataclass(frozen=True, kw_only=True, slots=True)
class Credential:
    """What a fetch needs of a provider: the Authorization value and where it may go."""

    provider: str
    authorization: str = field(repr=False)
    allowed: tuple[str, ...] = ()

    @classmethod
    def of(cls, provider: Provider, secret: ProviderSecret) -> Credential:
        if provider.auth is Auth.BASIC:
            pair = f"{provider.username or ''}:{secret.value}".encode()
            value = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            value = f"Bearer {secret.value}"
        return cls(provider=provider.name, authorization=value, allowed=provider.allowed)


def check_provider_name(name: str) -> str:
    if not 1 <= len(name) <= PROVIDER_NAME_MAX or not _NAME_RE.match(name):
        raise ValueError(
            f"name: 1 to {PROVIDER_NAME_MAX} characters, letters A-Z and a-z, '-' and '_' only"
        )
    return name


def check_credentials(auth: Auth, *, username: str | None, secret: str) -> None:
    """`ValueError` naming the field that cannot go into an Authorization header."""
    what = "config.basic.password" if auth is Auth.BASIC else "config.bearer"
    if not secret or len(secret) > _MAX_SECRET or not secret.isprintable():
        raise ValueError(f"{what}: 1 to {_MAX_SECRET} printable characters")
    if auth is Auth.BEARER and any(c.isspace() for c in secret):
        raise ValueError(f"{what}: a token has no spaces")
    # RFC 7617: the user-id cannot hold a colon; CR/LF would break the header.
    if auth is Auth.BASIC and not _username_ok(username):
        raise ValueError("config.basic.username: 1 to 1024 printable characters without ':'")


def _username_ok(username: str | None) -> bool:
    if not username:
        return False
    return len(username) <= 1024 and ":" not in username and username.isprintable()


def check_allowed(entries: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Normalised host names and URL prefixes; `ValueError` naming a bad one."""
    if len(entries) > MAX_ALLOWED:
        raise ValueError(f"allowed: at most {MAX_ALLOWED} entries")
    out: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if "://" in entry:
            try:
                parts = urlsplit(entry)
                _ = parts.port
            except ValueError:
                raise ValueError(f"allowed: {raw!r} is not a valid URL prefix") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"allowed: {raw!r} must be an http(s) URL prefix")
            if parts.username is not None or parts.query or parts.fragment:
                raise ValueError(f"allowed: {raw!r}: a prefix is scheme, host, port and path")
            # Scheme and host are case-insensitive; the path is kept as given.
            netloc = parts.netloc.lower()
            out.append(f"{parts.scheme.lower()}://{netloc}{parts.path or '/'}")
        else:
            host = entry.lower()
            if not _HOST_RE.match(host):
                raise ValueError(f"allowed: {raw!r} is not a host name or URL prefix")
            out.append(host.rstrip("."))
    return tuple(out)


def allows(allowed: tuple[str, ...], url: str) -> bool:
    """Whether a credential restricted to `allowed` may be sent to `url`.

    An empty restriction allows any URL (the fetcher still keeps the credential to
    the host of the URL asked for).
    """
    if not allowed:
        return True
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    for entry in allowed:
        if "://" in entry:
            # A dot segment could climb out of the prefix on the server's side.
            dots = any(unquote(s) in (".", "..") for s in parts.path.split("/"))
            if not dots and (_normal(url).startswith(entry) or _normal(url) + "/" == entry):
                return True
        elif entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def _normal(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port (the default port filled in)."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme.lower(), pa.hostname, _port(pa.scheme, pa.port)) == (
        pb.scheme.lower(),
        pb.hostname,
        _port(pb.scheme, pb.port),
    )


def _port(scheme: str, port: int | None) -> int | None:
    if port is not None:
        return port
    return {"http": 80, "https": 443}.get(scheme.lower())
