"""The provider channels' pool: idle connections checked with a poll of the socket, and
a bookkeeping pass that decides as httpcore's does, in linear time."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from httpcore._async.connection_pool import AsyncPoolRequest  # private: the pass's input
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wafile.channels.guarded_http import GuardedTransport, OutboundGuard
from wafile.channels.http_pool import LinearPool, PollingBackend, PollingStream, polling_transport


class _Stream(httpcore.AsyncNetworkStream):
    """A connection over one end of a socket pair, counting attribute lookups."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lookups: list[str] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return self

    def get_extra_info(self, info: str) -> Any:
        self.lookups.append(info)
        return self.sock if info == "socket" else "inner"


class _Network(httpcore.AsyncNetworkBackend):
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kw: Any) -> _Stream:
        self.dialled.append((host, port))
        return self.stream

    async def connect_unix_socket(self, *args: Any, **kw: Any) -> _Stream:
        return self.stream

    async def sleep(self, seconds: float) -> None:
        return None


async def test_an_idle_connection_is_checked_with_one_poll_of_its_socket() -> None:
    ours, theirs = socket.socketpair()
    inner = _Stream(ours)
    network = _Network(inner)
    try:
        conn = await PollingBackend(network).connect_tcp("graph.example", 443)
        assert isinstance(conn, PollingStream)
        assert network.dialled == [("graph.example", 443)]
        assert [conn.get_extra_info("is_readable") for _ in range(5)] == [False] * 5
        theirs.close()  # the server hangs up: the next read would return b""
        assert conn.get_extra_info("is_readable") is True
        assert inner.lookups == ["socket"]  # looked up once, at connect
        assert conn.get_extra_info("server_addr") == "inner"  # the rest: the stream's
        tls = await conn.start_tls(ssl.create_default_context(), "graph.example")
        assert isinstance(tls, PollingStream)
        assert tls.get_extra_info("is_readable") is True
    finally:
        ours.close()
        theirs.close()


def test_the_transport_keeps_httpx_limits_and_verifies_certificates() -> None:
    limits = httpx.Limits(max_connections=7, max_keepalive_connections=3, keepalive_expiry=2)
    transport = polling_transport(limits)
    pool = transport._pool
    assert isinstance(pool, LinearPool)
    assert isinstance(GuardedTransport(OutboundGuard())._pool, LinearPool)
    assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
    assert pool._keepalive_expiry == 2
    assert isinstance(pool._network_backend, PollingBackend)
    assert pool._ssl_context is not None
    assert pool._ssl_context.verify_mode is ssl.CERT_REQUIRED


ORIGINS = [
    httpcore.URL("http://receiver.example/hook").origin,
    httpcore.URL("https://receiver.example/hook").origin,
    httpcore.URL("https://graph.example/v21.0").origin,
]


@dataclass(eq=False)
class _Connection(httpcore.AsyncConnectionInterface):
    """A connection in a given state; what the pass asks of it, nothing else."""

    name: str
    origin: httpcore.Origin
    closed: bool = False
    expired: bool = False
    idle: bool = False
    available: bool = False

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin

    def is_available(self) -> bool:
        return self.available

    def has_expired(self) -> bool:
        return self.expired

    def is_idle(self) -> bool:
        return self.idle

    def is_closed(self) -> bool:
        return self.closed


_connections = st.lists(
    st.tuples(st.sampled_from(range(len(ORIGINS))), *[st.booleans()] * 4), max_size=12
)
# Each request: its origin, and the connection (by index) it already holds, or none.
_requests = st.lists(
    st.tuples(st.sampled_from(range(len(ORIGINS))), st.none() | st.integers(0, 11)),
    max_size=8,
)


def _pass(
    pool_class: type[httpcore.AsyncConnectionPool],
    max_connections: int,
    max_keepalive: int,
    connections: list[tuple[int, bool, bool, bool, bool]],
    requests: list[tuple[int, int | None]],
) -> tuple[list[str], list[str], list[str | None]]:
    """One bookkeeping pass over a pool in the state drawn: the connections closed, the
    pool's connections after, and the connection each request holds after."""

    class Pool(pool_class):  # type: ignore[misc, valid-type]
        made = 0

        def create_connection(self, origin: httpcore.Origin) -> _Connection:
            Pool.made += 1
            return _Connection(f"new{Pool.made}", origin)  # connecting: neither idle nor free

    pool = Pool(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    conns = [
        _Connection(f"c{i}", ORIGINS[o], closed=c, expired=e, idle=i_, available=a)
        for i, (o, c, e, i_, a) in enumerate(connections)
    ]
    pool._connections = list(conns)
    for origin, holds in requests:
        request = AsyncPoolRequest(httpcore.Request("POST", f"{ORIGINS[origin]}/hook"))
        if holds is not None and holds < len(conns):
            request.assign_to_connection(conns[holds])
        pool._requests.append(request)
    closing = pool._assign_requests_to_connections()
    return (
        [c.name for c in closing],
        [c.name for c in pool._connections],
        [r.connection.name if r.connection else None for r in pool._requests],
    )


@settings(max_examples=400, deadline=None)
@given(
    max_connections=st.integers(1, 12),
    max_keepalive=st.integers(0, 12),
    connections=_connections,
    requests=_requests,
)
# Full pool: the idle connection one request was handed is closed to make room for
# another origin's, and a third request may not be handed it again.
@example(
    max_connections=1,
    max_keepalive=1,
    connections=[(0, False, False, True, True)],
    requests=[(0, None), (1, None), (0, None)],
)
def test_the_linear_pass_decides_as_httpcores_does(
    max_connections: int,
    max_keepalive: int,
    connections: list[tuple[int, bool, bool, bool, bool]],
    requests: list[tuple[int, int | None]],
) -> None:
    async def both() -> None:  # a request's event needs a running loop
        drawn = (min(max_keepalive, max_connections), connections, requests)
        theirs = _pass(httpcore.AsyncConnectionPool, max_connections, *drawn)
        ours = _pass(LinearPool, max_connections, *drawn)
        assert ours == theirs

    asyncio.run(both())
