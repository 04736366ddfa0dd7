"""POST one signed callback event to a customer's URL (Standard Webhooks).

One pooled httpx client per worker process. Strict time limits (5 s to connect, 15 s
for the whole exchange), redirects never followed (a 3xx is a failed attempt: the
receiver must give its final URL), and only the start of the answer is read. The
signature is the `standardwebhooks` package's: HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}` with the base64-decoded secret.

Every request goes through the SSRF guard (`guarded_http`): the receiver's name is
resolved once, refused if any address is not public, and the POST goes to the
checked address. Without a guard given, the default one lets a callback reach this
machine only when its URL names it (`127.0.0.1`, `[::1]`, `localhost`), which the API
accepts only in sandbox mode or with WAFILE_CALLBACK_ALLOW_LOOPBACK_HTTP; pass
`guard=wafile.services.outbound.callback_guard_for(settings)` to apply the operator's
allowlist too.

Nothing raises out of `post`: every outcome, a timeout and a refusal included, is a
`PostResult`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from math import floor
from typing import Final

import httpx
from standardwebhooks.webhooks import Webhook

from wafile import __version__
from wafile.channels.guarded_http import GuardedTransport, OutboundGuard
from wafile.channels.pooled import PooledClient
from wafile.errors import OutboundRefused

__all__ = [
    "CONNECT_TIMEOUT",
    "SNIPPET_CHARS",
    "TOTAL_TIMEOUT",
    "CallbackPoster",
    "PostResult",
    "signature_headers",
]

CONNECT_TIMEOUT: Final = 5.0
TOTAL_TIMEOUT: Final = 15.0
SNIPPET_CHARS: Final = 500
_READ_LIMIT: Final = 4 * SNIPPET_CHARS  # bytes read of an answer, at most
_TIMEOUT: Final = httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
_USER_AGENT: Final = f"wafile/{__version__} (callbacks)"


@dataclass(frozen=True, kw_only=True, slots=True)
class PostResult:
    status_code: int | None  # None: no answer (timeout, refused, TLS...)
    error: str | None  # None when delivered
    latency_ms: int
    response: str | None  # the first characters of the answer's body

    @property
    def delivered(self) -> bool:
        return self.error is None


def signature_headers(secret: str, event_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` sent at `at`."""
    at = at.astimezone(UTC)  # the package reads the time as UTC
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


class CallbackPoster(PooledClient):
    def __init__(
        self,
        *,
        guard: OutboundGuard | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the guarded network transport (tests' MockTransport)."""
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        if transport is None:
            transport = GuardedTransport(
                guard or OutboundGuard(loopback_by_name=True), limits=limits
            )
        # The client owns the transport (closing it with the client); `post` calls the
        # transport itself. The client's layers (URL and header merging, cookies, auth,
        # the redirect loop) are nothing a callback uses, and cost about a fifth of a
        # POST's CPU (measured): no redirect is ever followed, no cookie kept, and with
        # the transport given no proxy from the environment is used.
        self._transport = transport
        self._http = httpx.AsyncClient(
            timeout=_TIMEOUT,
            follow_redirects=False,
            limits=limits,
            transport=transport,
            trust_env=False,  # a proxy would resolve the name itself, past the guard
        )

    async def post(
        self,
        url: str,
        body: str,
        *,
        event_id: str,
        secret: str,
        at: datetime,
        signed: dict[str, str] | None = None,
    ) -> PostResult:
        """Send `body` (JSON) signed with `secret` (`whsec_...`) as of `at`, the Standard
        Webhooks way, or with the `signed` headers a vendor's format made instead."""
        headers = {
            "User-Agent": _USER_AGENT,
            "Content-Type": "application/json",
            **(signed if signed is not None else signature_headers(secret, event_id, at, body)),
        }
        started = time.monotonic()

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(TOTAL_TIMEOUT):
                request = httpx.Request(
                    "POST",
                    url,
                    content=body.encode(),
                    headers=headers,
                    extensions={"timeout": _TIMEOUT.as_dict()},
                )
                resp = await self._transport.handle_async_request(request)
                try:
                    raw = await _start_of(resp)
                    status = resp.status_code
                    location = resp.headers.get("location")
                finally:
                    await resp.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return PostResult(
                status_code=None,
                error=f"no answer within {TOTAL_TIMEOUT:g} s",
                latency_ms=elapsed(),
                response=None,
            )
        except OutboundRefused as exc:
            return PostResult(
                status_code=None,
                error=f"refused: {exc.detail}"[:SNIPPET_CHARS],
                latency_ms=elapsed(),
                response=None,
            )
        except httpx.HTTPError as exc:
            return PostResult(
                status_code=None,
                error=f"{type(exc).__name__}: {exc}"[:SNIPPET_CHARS],
                latency_ms=elapsed(),
                response=None,
            )
        snippet = raw.decode("utf-8", errors="replace")[:SNIPPET_CHARS] or None
        error = None
        if 300 <= status < 400:
            error = f"HTTP {status}: redirect to {location or '?'} not followed"[:SNIPPET_CHARS]
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        return PostResult(status_code=status, error=error, latency_ms=elapsed(), response=snippet)


async def _start_of(resp: httpx.Response) -> bytes:
    """The first bytes of the answer; the rest is not read (nor kept in memory)."""
    got = bytearray()
    async for chunk in resp.aiter_bytes():
        got += chunk
        if len(got) >= _READ_LIMIT:
            break
    return bytes(got[:_READ_LIMIT])
