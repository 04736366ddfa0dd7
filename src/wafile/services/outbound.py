"""The one SSRF guard for every outbound request to a URL a client gave wafile.

Two checks, at two moments. `check_callback_url` is the syntactic check of a callback
URL when it is accepted (API time). `guard_for(settings)` builds the guard that every
request to a client-given URL then goes through, remote files and callbacks alike
(`wafile.channels.guarded_http`: resolve once, refuse if any address is not public
unless the operator allowed it, connect to the checked address, re-check redirects).
The guard's mechanism lives beside the channels because channels may not import
services; the policy (which settings mean what) is decided here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from wafile.channels.guarded_http import OutboundGuard, Resolver, system_resolver
from wafile.config import Settings
from wafile.core.hosts import is_loopback
from wafile.errors import ValidationFailed

__all__ = [
    "MAX_URL_LENGTH",
    "OutboundGuard",
    "callback_guard_for",
    "check_callback_url",
    "guard_for",
]

MAX_URL_LENGTH = 2048


def guard_for(settings: Settings, *, resolver: Resolver | None = None) -> OutboundGuard:
    """The guard `WAFILE_OUTBOUND_ALLOW` and `WAFILE_OUTBOUND_ALLOW_LOOPBACK` describe."""
    return OutboundGuard(
        allow=settings.outbound_allowlist,
        allow_loopback=settings.outbound_loopback_ok,
        resolver=resolver or system_resolver,
    )


def callback_guard_for(settings: Settings, *, resolver: Resolver | None = None) -> OutboundGuard:
    """The guard for callback POSTs: as `guard_for`, and a callback URL that names this
    machine (accepted only in sandbox mode or with WAFILE_CALLBACK_ALLOW_LOOPBACK_HTTP)
    may reach it; a name that merely resolves to it may not."""
    return OutboundGuard(
        allow=settings.outbound_allowlist,
        allow_loopback=settings.outbound_loopback_ok,
        loopback_by_name=settings.callback_loopback_ok,
        resolver=resolver or system_resolver,
    )


def check_callback_url(url: str, *, allow_loopback_http: bool, field: str = "url") -> str:
    """The URL if wafile may POST callbacks to it, else `ValidationFailed` saying why.

    https only; plain http only to this machine (127.0.0.1, ::1, localhost) and only
    when allowed (sandbox mode or `WAFILE_CALLBACK_ALLOW_LOOPBACK_HTTP`). No
    credentials in the URL: they would travel in every request and show in logs.
    Where the name leads is checked when the callback is sent (the guard).
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"{field}: longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise ValidationFailed(f"{field}: not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationFailed(f"{field}: must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed(f"{field}: must not carry a user name or password")
    if parts.scheme == "http":
        if not is_loopback(host):
            raise ValidationFailed(f"{field}: must be https:// (plain http only to this machine)")
        if not allow_loopback_http:
            raise ValidationFailed(
                f"{field}: must be https:// (http to this machine only in sandbox mode or with "
                "WAFILE_CALLBACK_ALLOW_LOOPBACK_HTTP)"
            )
    return url
