"""The one check of a URL a client gave wafile to call (callback URLs).

Issue 8's SSRF guard (resolved addresses must be public, the connection pinned to the
checked address) replaces `check_callback_url`; every caller goes through it, so that
is the only place to change.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from wafile.core.hosts import is_loopback
from wafile.errors import ValidationFailed

__all__ = ["MAX_URL_LENGTH", "check_callback_url"]

MAX_URL_LENGTH = 2048


def check_callback_url(url: str, *, allow_loopback_http: bool, field: str = "url") -> str:
    """The URL if wafile may POST callbacks to it, else `ValidationFailed` saying why.

    https only; plain http only to this machine (127.0.0.1, ::1, localhost) and only
    when allowed (sandbox mode or `WAFILE_CALLBACK_ALLOW_LOOPBACK_HTTP`). No
    credentials in the URL: they would travel in every request and show in logs.
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
