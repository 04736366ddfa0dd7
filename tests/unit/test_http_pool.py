"""The provider channels' pool: idle connections checked with a poll of the socket."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import httpcore
import httpx

from wafile.channels.http_pool import PollingBackend, PollingStream, polling_transport


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
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
    assert pool._keepalive_expiry == 2
    assert isinstance(pool._network_backend, PollingBackend)
    assert pool._ssl_context is not None
    assert pool._ssl_context.verify_mode is ssl.CERT_REQUIRED
