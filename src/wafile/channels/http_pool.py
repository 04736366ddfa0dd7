"""httpx transports whose connection pool checks its idle connections cheaply.

httpcore asks every idle connection of a pool "are you readable?" each time a request
comes or goes (a server that closed one makes it readable), and anyio's streams answer
by building their whole table of attributes first: measured, that was a fifth of the
HTTP client's CPU in a busy worker with 32 sends at once, and doubled a callback
POST's when 16 or more connections were open. `PollingStream` answers with one poll
of the socket, looked up once. `polling_transport` is httpx's own transport with
that under its pool, for the provider channels; the SSRF guard's transport
(`guarded_http`) wraps its checked connections the same way.

`LinearPool` is httpcore's pool with its bookkeeping pass (run when a request comes
and when it goes) linear in the pool's connections: httpcore 1.0's counts the pool's
connections once per idle connection, so with 32 connections open a callback POST
paid about two thousand calls of it. Both transports use it.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# httpcore's own check (a zero-timeout poll); private, pinned by the lock file and
# covered by tests/unit/test_http_pool.py.
from httpcore._utils import is_socket_readable

__all__ = ["LinearPool", "PollingBackend", "PollingStream", "polling_transport"]


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


class LinearPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool, deciding exactly as httpcore 1.0's does (the
    property test in tests/unit/test_http_pool.py compares the two on random pools),
    in one walk of its connections instead of one per idle connection, and with the
    connections a queued request may reuse listed once per origin, not per request."""

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        # Drop closed connections and close expired ones; close idle ones while the
        # pool holds more connections than it keeps alive (httpcore compares its
        # whole size with that limit, not its idle connections: kept as it is).
        kept: list[httpcore.AsyncConnectionInterface] = []
        size = len(self._connections)
        for connection in self._connections:
            if connection.is_closed():
                size -= 1
            elif connection.has_expired() or (
                connection.is_idle() and size > self._max_keepalive_connections
            ):
                size -= 1
                closing.append(connection)
            else:
                kept.append(connection)
        self._connections[:] = kept

        queued = [request for request in self._requests if request.is_queued()]
        if not queued:
            return closing
        # Handing a connection to a request does not change its state until the
        # request starts on it, so within this pass an available connection stays
        # available (a second request given it retries, as with httpcore's) and a new
        # one is neither available nor idle: each list is made once.
        # By (scheme, host, port): httpcore's Origin compares so but is not hashable.
        reusable: dict[tuple[bytes, bytes, int], list[httpcore.AsyncConnectionInterface]] = {}
        idle = deque(connection for connection in kept if connection.is_idle())
        for request in queued:
            origin = request.request.url.origin
            key = (origin.scheme, origin.host, origin.port)
            if key not in reusable:
                reusable[key] = [
                    connection
                    for connection in self._connections
                    if connection.can_handle_request(origin) and connection.is_available()
                ]
            if reusable[key]:
                request.assign_to_connection(reusable[key][0])
                continue
            if len(self._connections) >= self._max_connections:
                if not idle:
                    continue  # it waits for a connection to come free
                # Full: the oldest idle connection makes room for a new one.
                victim = idle.popleft()
                self._connections.remove(victim)
                closing.append(victim)
                for listed in reusable.values():
                    if victim in listed:
                        listed.remove(victim)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            request.assign_to_connection(connection)
        return closing


class _PollingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        # super().__init__ is not called: it would build a pool only to be replaced.
        # Everything else of httpx's transport (request and error mapping) is its own.
        self._pool = LinearPool(
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
