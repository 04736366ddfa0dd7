"""Fetch a file from a URL a client gave: through the SSRF guard, bounded in time and size.

`RemoteFetcher.open(url, credential=...)` follows at most `max_redirects` redirects
itself (each new URL checked by the guard like the first), sends a provider's
credential only to the URL's own origin and only where the provider allows it
(never across a redirect to another host), and yields a `RemoteFile` whose `chunks`
stream the body. The caller reads it inside the `async with`; the size limit is the
caller's ingest (it stops reading at the limit, whatever Content-Length said); a
Content-Length over the limit is refused before the body is read.

Time: connect and read (between two chunks) timeouts, and one deadline for the
whole exchange, the caller's reading included. Load: at most `per_host` fetches
at once to one host, per process. Failures are `wafile.errors`: `RemoteUnavailable`
(no answer in time, connection failed, HTTP 5xx/408/429: worth retrying later) after
`retries` quick retries, `RemoteRejected` (any other 4xx: the origin's status is in
the message and in `origin_status`), `OutboundRefused` (the guard said no),
`PayloadTooLarge` (the limit).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx

from wafile import __version__
from wafile.channels.guarded_http import GuardedTransport, OutboundGuard
from wafile.channels.pooled import PooledClient
from wafile.core.providers import Credential, allows, same_origin
from wafile.errors import (
    OutboundRefused,
    PayloadTooLarge,
    RemoteRejected,
    RemoteUnavailable,
)

__all__ = [
    "USER_AGENT",
    "FetchLimits",
    "HostLimiter",
    "RemoteFetcher",
    "RemoteFile",
    "shared_limiter",
]

USER_AGENT: Final = f"wafile/{__version__} (remote media fetcher)"
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_RETRYABLE: Final = frozenset({408, 425, 429})
_MAX_BACKOFF: Final = 5.0  # a longer Retry-After is left to the caller's own retry


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchLimits:
    max_bytes: int
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 300.0
    max_redirects: int = 5
    per_host: int = 4
    retries: int = 2  # quick retries of a failure worth retrying, within total_timeout
    backoff: float = 0.5  # seconds before the first quick retry; doubles each time


@dataclass(kw_only=True)
class RemoteFile:
    url: str  # after redirects
    status_code: int
    content_type: str | None
    content_disposition: str | None
    content_length: int | None
    chunks: AsyncIterator[bytes] = field(repr=False)


class HostLimiter:
    """At most `per_host` holders per host at once; idle hosts are forgotten."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        sem, users = self._slots.get(host) or (asyncio.Semaphore(self.per_host), 0)
        self._slots[host] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._slots[host]
            if users <= 1:
                del self._slots[host]
            else:
                self._slots[host] = (sem, users - 1)

    def busy(self, host: str) -> int:
        """How many fetches hold or wait for a slot of `host` (for tests and metrics)."""
        found = self._slots.get(host)
        return found[1] if found else 0


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, HostLimiter]] = (
    weakref.WeakKeyDictionary()
)


def shared_limiter(per_host: int) -> HostLimiter:
    """The process's limiter for this event loop (asyncio primitives belong to one loop)."""
    by_limit = _limiters.setdefault(asyncio.get_running_loop(), {})
    return by_limit.setdefault(per_host, HostLimiter(per_host))


class RemoteFetcher(PooledClient):
    """One pooled, guarded HTTP client for remote files. Close it (or `async with`)."""

    def __init__(
        self,
        guard: OutboundGuard,
        limits: FetchLimits,
        *,
        limiter: HostLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._guard = guard
        self._limits = limits
        self._limiter = limiter
        self._http = httpx.AsyncClient(
            transport=transport or GuardedTransport(guard),
            timeout=httpx.Timeout(
                limits.read_timeout, connect=limits.connect_timeout, pool=limits.total_timeout
            ),
            follow_redirects=False,  # followed here, each hop checked
            trust_env=False,  # never a proxy: it would resolve names past the guard
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    @asynccontextmanager
    async def open(
        self, url: str, *, credential: Credential | None = None
    ) -> AsyncIterator[RemoteFile]:
        """The file at `url`, its body not yet read. See the module docstring."""
        self._check(url, credential)
        limits = self._limits
        limiter = self._limiter or shared_limiter(limits.per_host)
        try:
            async with asyncio.timeout(limits.total_timeout), AsyncExitStack() as stack:
                response = await self._answer(url, credential, limiter, stack)
                yield RemoteFile(
                    url=str(response.url),
                    status_code=response.status_code,
                    content_type=response.headers.get("content-type"),
                    content_disposition=response.headers.get("content-disposition"),
                    content_length=_length(response),
                    chunks=self._body(response),
                )
        except TimeoutError:
            raise RemoteUnavailable(
                f"url: the file was not fetched within {limits.total_timeout:g} s"
            ) from None

    def _check(self, url: str, credential: Credential | None) -> None:
        self._guard.check_url(url)
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise OutboundRefused(
                "url: must not carry a user name or password (use a media provider)"
            )
        if credential is not None and not allows(credential.allowed, url):
            raise OutboundRefused(
                f"url: provider {credential.provider!r} may only fetch from "
                + ", ".join(credential.allowed)
            )

    async def _answer(
        self,
        url: str,
        credential: Credential | None,
        limiter: HostLimiter,
        stack: AsyncExitStack,
    ) -> httpx.Response:
        """The final 2xx answer, open; retried quickly while worth it."""
        attempt = 0
        while True:
            try:
                return await self._follow(url, credential, limiter, stack)
            except RemoteUnavailable as exc:
                if attempt >= self._limits.retries:
                    raise
                wait = exc.extra.get("retry_after")
                if wait is None:
                    wait = self._limits.backoff * 2**attempt
                elif wait > _MAX_BACKOFF:
                    raise
                attempt += 1
                await asyncio.sleep(wait)

    async def _follow(
        self,
        url: str,
        credential: Credential | None,
        limiter: HostLimiter,
        stack: AsyncExitStack,
    ) -> httpx.Response:
        first = url
        for _hop in range(self._limits.max_redirects + 1):
            headers = {}
            # The credential goes to the origin asked for, and only while allowed.
            if (
                credential is not None
                and same_origin(url, first)
                and allows(credential.allowed, url)
            ):
                headers["Authorization"] = credential.authorization
            host = urlsplit(url).hostname or ""
            hop = AsyncExitStack()
            await hop.enter_async_context(limiter.slot(host))
            try:
                response = await self._send(url, headers)
                hop.push_async_callback(response.aclose)
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    target = urljoin(url, response.headers["location"])
                    await hop.aclose()
                    self._guard.check_url(target)
                    url = target
                    continue
                _raise_for(response)
            except BaseException:
                await hop.aclose()
                raise
            await stack.enter_async_context(hop)  # the slot is held while the body streams
            return response
        raise RemoteRejected(
            f"url: more than {self._limits.max_redirects} redirects", origin_status=None
        )

    async def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        request = self._http.build_request("GET", url, headers=headers)
        try:
            return await self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise RemoteUnavailable(f"url: {_host(url)} did not answer in time") from None
        except httpx.TransportError as exc:
            raise RemoteUnavailable(f"url: {_host(url)} could not be reached: {exc}") from None

    async def _body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        limit = self._limits.max_bytes
        length = _length(response)
        if length is not None and length > limit:
            raise PayloadTooLarge(
                f"url: the file is {length} bytes, over this server's limit of {limit} bytes "
                "(WAFILE_MAX_UPLOAD_BYTES)",
                limit=limit,
            )
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TimeoutException:
            raise RemoteUnavailable(
                f"url: {_host(str(response.url))} sent nothing for {self._limits.read_timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise RemoteUnavailable(
                f"url: the download from {_host(str(response.url))} broke off: {exc}"
            ) from None


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    where = _host(str(response.url))
    if status >= 500 or status in _RETRYABLE:
        extra = {"origin_status": status}
        retry_after = _retry_after(response.headers.get("retry-after"))
        if retry_after is not None:
            extra["retry_after"] = retry_after
        raise RemoteUnavailable(f"url: {where} answered HTTP {status}", **extra)
    if status in _REDIRECTS:
        raise RemoteRejected(
            f"url: {where} answered HTTP {status} without a Location", origin_status=status
        )
    raise RemoteRejected(f"url: {where} answered HTTP {status}", origin_status=status)


def _retry_after(value: str | None) -> int | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, round((when - datetime.now(UTC)).total_seconds()))


def _length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
