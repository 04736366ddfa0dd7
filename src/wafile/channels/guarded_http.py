"""The SSRF guard, as an httpx transport: every connection goes to an address that
was checked, and to no other.

The check happens where the connection is made (httpcore's network backend): the
host is resolved once, the connection is refused if ANY of its addresses is not
public (`wafile.core.ssrf` names the rule), and the socket is opened to one of the
checked addresses, so a second DNS answer (DNS rebinding) never gets a say. TLS is
still verified for the hostname of the URL, which is also the SNI sent: httpcore
starts TLS on the pinned socket with `server_hostname` set to the URL's host.
Redirects need nothing special: each new origin is a new connection, checked again.

The transport never uses proxies from the environment (a proxy would resolve the
name itself). A refusal raises `OutboundRefused` before any byte is sent.

`wafile.services.outbound.guard_for(settings)` builds the guard from the settings;
channels get it injected (they may not read settings).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_address
from typing import Final
from urllib.parse import urlsplit

import httpcore
import httpx

from wafile.channels.http_pool import LinearPool, PollingStream
from wafile.core.ssrf import Address, Allowlist, host_address, is_loopback_name, refusal
from wafile.errors import OutboundRefused

__all__ = [
    "MAX_URL_LENGTH",
    "GuardedTransport",
    "OutboundGuard",
    "Resolver",
    "system_resolver",
]

MAX_URL_LENGTH: Final = 8192  # signed storage URLs run long; a sane bound still
Resolver = Callable[[str, int], Awaitable[Sequence[Address]]]


async def system_resolver(host: str, port: int) -> list[Address]:
    """The host's addresses as the system resolver gives them (getaddrinfo)."""
    try:  # an address already: no resolver (asyncio's getaddrinfo is a thread hop)
        return [ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for *_, sockaddr in infos:
        ip = ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


@dataclass(frozen=True, kw_only=True)
class OutboundGuard:
    """Where outbound requests to client-given URLs may go.

    `allow_loopback` lets 127.0.0.0/8 and ::1 through (sandbox, local tests; unsafe in
    production). `loopback_by_name` lets them through only when the URL names this
    machine itself (`127.0.0.1`, `[::1]`, `localhost`), never through another name:
    for callback URLs, whose loopback use was already decided when they were accepted.
    """

    allow: Allowlist = field(default_factory=Allowlist)
    allow_loopback: bool = False
    loopback_by_name: bool = False
    resolver: Resolver = system_resolver

    def check_url(self, url: str, *, field: str = "url") -> str:
        """The URL if its form may be fetched (http(s), a host, no address refused by
        its literal form), else `OutboundRefused` saying why. Resolving comes later."""
        if len(url) > MAX_URL_LENGTH:
            raise OutboundRefused(f"{field}: longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            _ = parts.port
        except ValueError:
            raise OutboundRefused(f"{field}: not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https"):
            shown = f"{parts.scheme}://" if parts.scheme else "a URL without a scheme"
            raise OutboundRefused(f"{field}: only http:// and https:// URLs, not {shown}")
        if not host:
            raise OutboundRefused(f"{field}: the URL has no host")
        ip = host_address(host)
        if ip is not None:
            self._check(ip, host, field=field, resolved=False)
        return url

    async def addresses(self, host: str, port: int, *, field: str = "url") -> list[Address]:
        """The checked addresses to connect to for `host`; `OutboundRefused` if any of
        them is not allowed. Raises `OSError` when the name does not resolve."""
        ip = host_address(host)
        if ip is not None:
            self._check(ip, host, field=field, resolved=False)
            return [ip]
        found = list(await self.resolver(host, port))
        if not found:
            raise OSError(f"{host} has no address")
        if self.allow.allows_host(host):
            return found
        for ip in found:
            self._check(ip, host, field=field, resolved=True)
        return found

    def _check(self, ip: Address, host: str, *, field: str, resolved: bool) -> None:
        reason = refusal(ip)
        if reason is None or self.allow.allows_address(ip):
            return
        if _loopback(ip) and (
            self.allow_loopback or (self.loopback_by_name and is_loopback_name(host))
        ):
            return
        if resolved:
            raise OutboundRefused(f"{field}: {host} resolves to {ip}, {reason}")
        shown = host.strip("[]") if str(ip) == host.strip("[]").lower() else f"{host} ({ip})"
        raise OutboundRefused(f"{field}: {shown} is {reason}")


def _loopback(ip: Address) -> bool:
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve and check once, then connect to the checked address itself."""

    def __init__(self, guard: OutboundGuard, inner: httpcore.AsyncNetworkBackend) -> None:
        self._guard = guard
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                found = await self._guard.addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: no address within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: the name does not resolve ({exc})") from None
        failure: Exception | None = None
        for ip in found:
            try:
                stream = await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
                return PollingStream(stream)  # checked by a poll when idle
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("url: unix sockets are never reached from a client's URL")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every client.
    return httpx.create_ssl_context(verify=True, trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with the guard's network backend under its pool.

    `inner` is the real network (tests pass a fake one to see what is dialled).
    """

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        # super().__init__ is not called: it would build a pool (and a TLS context)
        # only to be replaced. Everything else of httpx's transport is used as is.
        self._guard = guard
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = LinearPool(
            ssl_context=ssl_context or _verifying_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_GuardedBackend(guard, inner or httpcore.AnyIOBackend()),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._guard.check_url(str(request.url))
        return await super().handle_async_request(request)
