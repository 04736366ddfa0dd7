"""httpx transports whose connection pool checks its idle connections cheaply.

httpcore asks every idle connection of a pool "are you readable?" each time a request
comes or goes (a server that closed one makes it readable), and anyio's streams answer
by building their whole table of attributes first: measured, that was a fifth of the
HTTP client's CPU in a busy worker with 32 sends at once, and doubled a callback
POST's when 16 or more connections were open. `PollingStream` answers with one poll
of the socket, looked up once. `polling_transport` is httpx's own transport with
that under its pool, for the provider channels; the SSRF guard's transport
(`guarded_http`) wraps its checked connections the same way.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# httpcore's own check (a zero-timeout poll); private, pinned by the lock file and
# covered by tests/unit/test_http_pool.py.
from httpcore._utils import is_socket_readable

__all__ = ["PollingBackend", "PollingStream", "polling_transport"]


class PollingStream(httpcore.AsyncNetworkStream):
    """A connection whose "is it readable?" costs a poll only; all else goes to the
    stream as it is."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        # TLS runs over the same socket: the readable check stays the socket's.
        return PollingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return self._stream.get_extra_info(info)


class PollingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network (or `inner`), its TCP connections wrapped in `PollingStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return PollingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PollingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        # super().__init__ is not called: it would build a pool only to be replaced.
        # Everything else of httpx's transport (request and error mapping) is its own.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PollingBackend(),
        )


def polling_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's default transport (HTTP/1.1, certificates verified) with `limits`, its
    pool checking idle connections with a poll (`PollingStream`)."""
    return _PollingTransport(limits)
