"""The SSRF rules (core/ssrf.py) and the guard that applies them where connections are
made (channels/guarded_http.py), with a fake resolver and a recording network: the
issue's table is refused with the allowlist empty, before anything is dialled; an
allowed host is dialled at the very address that was checked, with TLS for its name."""

from __future__ import annotations

import importlib.util
import socket
import ssl
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import httpcore
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from wafile.channels.guarded_http import (
    GuardedTransport,
    OutboundGuard,
    _GuardedBackend,
    system_resolver,
)
from wafile.config import Settings
from wafile.core.ssrf import (
    Address,
    Allowlist,
    host_address,
    is_loopback_name,
    parse_allowlist,
    refusal,
)
from wafile.errors import OutboundRefused
from wafile.services.outbound import guard_for

PUBLIC = IPv4Address("93.184.216.34")

# The table: URL -> a word the refusal must contain.
REFUSED = {
    "http://127.0.0.1/": "loopback",
    "http://localhost/": "loopback",
    "http://[::1]/": "loopback",
    "http://0.0.0.0/": "unspecified",
    "http://10.0.0.1/": "RFC 1918",
    "http://172.16.0.1/": "RFC 1918",
    "http://192.168.1.1/": "RFC 1918",
    "http://169.254.169.254/latest/meta-data/": "metadata",
    "http://100.64.0.1/": "carrier-grade NAT",
    "http://[fc00::1]/": "unique local",
    "http://[fe80::1]/": "link-local",
    "http://[::ffff:127.0.0.1]/": "IPv4-mapped",
    "http://2130706433/": "loopback",
    "http://0x7f000001/": "loopback",
    "http://017700000001/": "loopback",
    "http://rebind.example/": "resolves to 127.0.0.1",
    "ftp://files.example/x": "only http:// and https://",
    "file:///etc/passwd": "only http:// and https://",
}


class FakeResolver:
    """Names to addresses, counting lookups; `localhost` as the system has it."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = {
            "localhost": ["127.0.0.1", "::1"],
            "rebind.example": ["127.0.0.1"],
            "files.example": [str(PUBLIC)],
            **(table or {}),
        }
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[Address]:
        self.lookups.append(host)
        return [ip_address(a) for a in self.table.get(host, [])]


class FakeStream(httpcore.AsyncNetworkStream):
    """A socket that answers one canned HTTP/1.1 response and records TLS."""

    def __init__(self, net: RecordingNetwork) -> None:
        self.net = net
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data, self.answer = self.answer[:max_bytes], self.answer[max_bytes:]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.net.sent.append(buffer)

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.net.tls.append(server_hostname)
        return self


class RecordingNetwork(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.dialled: list[tuple[str, int]] = []
        self.tls: list[str | None] = []
        self.sent: list[bytes] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append((host, port))
        return FakeStream(self)

    async def sleep(self, seconds: float) -> None:
        pass


async def get(guard: OutboundGuard, net: RecordingNetwork, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=GuardedTransport(guard, inner=net)) as client:
        return await client.get(url)


@pytest.mark.parametrize(("url", "rule"), REFUSED.items())
async def test_the_table_is_refused_before_anything_is_dialled(url: str, rule: str) -> None:
    net = RecordingNetwork()
    guard = OutboundGuard(resolver=FakeResolver())
    # The transport refuses on its own (httpx itself refuses other schemes first).
    with pytest.raises((OutboundRefused, httpx.UnsupportedProtocol)) as caught:
        await get(guard, net, url)
    if isinstance(caught.value, OutboundRefused):
        assert rule in caught.value.detail and caught.value.detail.startswith("url: ")
    assert net.dialled == [] and net.sent == []
    # And the syntactic check refuses every one that needs no resolving.
    if "example" not in url and "localhost" not in url:
        with pytest.raises(OutboundRefused, match=rule):
            guard.check_url(url)


async def test_the_refusal_names_the_address_and_the_rule() -> None:
    guard = OutboundGuard()
    with pytest.raises(OutboundRefused) as caught:
        guard.check_url("http://10.0.0.1/x")
    assert caught.value.detail == "url: 10.0.0.1 is a private address (RFC 1918)"
    assert caught.value.status == 422 and caught.value.code == "outbound_refused"
    with pytest.raises(OutboundRefused) as caught:
        guard.check_url("http://2130706433/")
    assert caught.value.detail == "url: 2130706433 (127.0.0.1) is a loopback address (127.0.0.0/8)"


async def test_any_non_public_address_of_a_name_refuses_it() -> None:
    net = RecordingNetwork()
    resolver = FakeResolver({"mixed.example": [str(PUBLIC), "10.1.2.3"]})
    with pytest.raises(OutboundRefused, match=r"mixed\.example resolves to 10\.1\.2\.3"):
        await get(OutboundGuard(resolver=resolver), net, "https://mixed.example/f.pdf")
    assert net.dialled == []


async def test_the_checked_address_is_dialled_with_tls_for_the_hostname() -> None:
    net = RecordingNetwork()
    resolver = FakeResolver()
    resp = await get(OutboundGuard(resolver=resolver), net, "https://files.example/a.pdf")
    assert resp.status_code == 200 and resp.text == "ok"
    assert net.dialled == [(str(PUBLIC), 443)]  # the address, not the name: no 2nd lookup
    assert net.tls == ["files.example"]  # SNI and certificate checks for the name
    assert resolver.lookups == ["files.example"]
    assert b"Host: files.example" in b"".join(net.sent)


async def test_the_allowlist_lets_named_hosts_and_networks_through() -> None:
    resolver = FakeResolver({"files.corp": ["10.0.0.5"], "nas.corp": ["10.9.0.7"]})
    guard = OutboundGuard(allow=parse_allowlist("files.corp, 10.9.0.0/16"), resolver=resolver)
    net = RecordingNetwork()
    await get(guard, net, "http://files.corp/x")
    await get(guard, net, "http://nas.corp/x")
    await get(guard, net, "http://10.9.1.1/x")
    assert net.dialled == [("10.0.0.5", 80), ("10.9.0.7", 80), ("10.9.1.1", 80)]
    with pytest.raises(OutboundRefused):
        await get(guard, net, "http://10.0.0.5/x")  # the host is allowed, not its network


async def test_loopback_switches() -> None:
    resolver = FakeResolver()
    anything = OutboundGuard(allow_loopback=True, resolver=resolver)
    net = RecordingNetwork()
    await get(anything, net, "http://localhost:8080/")
    await get(anything, net, "http://rebind.example/")
    with pytest.raises(OutboundRefused):
        await get(anything, net, "http://10.0.0.1/")  # loopback only, nothing else
    by_name = OutboundGuard(loopback_by_name=True, resolver=resolver)
    await get(by_name, net, "http://127.0.0.1:9000/")
    with pytest.raises(OutboundRefused):
        await get(by_name, net, "http://rebind.example/")  # a name that leads here: no
    assert ("127.0.0.1", 9000) in net.dialled


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("08.0.0.1", None),  # 8 is no octal digit: a name to resolve, like the C library
        ("4294967296", None),
    ],
)
def test_host_forms(host: str, expected: str | None) -> None:
    found = host_address(host)
    assert (str(found) if found is not None else None) == expected


def test_mapped_and_embedded_forms_are_judged_by_their_ipv4() -> None:
    assert refusal(IPv6Address("::ffff:8.8.8.8")) is None
    for embedded in ("64:ff9b::a00:1", "2002:a00:1::", "::10.0.0.1"):
        reason = refusal(IPv6Address(embedded))
        assert reason is not None and "10.0.0.1" in reason, embedded
    assert refusal(IPv4Address("8.8.8.8")) is None
    assert refusal(IPv6Address("2001:4860:4860::8888")) is None
    assert refusal(IPv4Address("192.0.2.1")) == "a reserved address (not globally routable)"


def test_allowlist_parsing() -> None:
    allow = parse_allowlist(" files.corp , *.internal, 10.0.0.0/8, 192.168.1.5, [fd00::1] ,")
    assert allow.allows_host("FILES.corp.") and allow.allows_host("a.b.internal")
    assert not allow.allows_host("internal") and not allow.allows_host("evilfiles.corp")
    assert allow.allows_address(IPv4Address("10.200.0.1"))
    assert allow.allows_address(IPv6Address("::ffff:10.0.0.1"))
    assert allow.allows_address(IPv6Address("fd00::1"))
    assert not allow.allows_address(IPv4Address("192.168.1.6"))
    assert not parse_allowlist("") and parse_allowlist("") == Allowlist()
    for bad in ("10.0.0.0/33", "http://x", "a b", "2130706433"):
        with pytest.raises(ValueError, match="not"):
            parse_allowlist(bad)


def test_loopback_names() -> None:
    assert is_loopback_name("localhost") and is_loopback_name("[::1]")
    assert is_loopback_name("2130706433") and not is_loopback_name("example.com")


ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)


def _form(value: int, style: str) -> str:
    return {"dec": str(value), "hex": hex(value), "oct": "0" + format(value, "o")}[style]


@given(ipv4s, st.lists(st.sampled_from(["dec", "hex", "oct"]), min_size=4, max_size=4))
def test_every_numeric_form_reads_as_the_same_address(ip: IPv4Address, styles: list[str]) -> None:
    n = int(ip)
    assert host_address(_form(n, styles[0])) == ip
    octets = n.to_bytes(4, "big")
    assert host_address(".".join(_form(o, s) for o, s in zip(octets, styles, strict=True))) == ip
    assert host_address(f"{_form(octets[0], styles[1])}.{_form(n & 0xFFFFFF, styles[2])}") == ip


@given(ipv4s)
def test_an_ipv4_mapped_address_is_refused_exactly_when_its_ipv4_is(ip: IPv4Address) -> None:
    mapped = IPv6Address(f"::ffff:{ip}")
    assert (refusal(mapped) is None) == (refusal(ip) is None)


@given(ipv4s)
def test_only_globally_routable_addresses_pass(ip: IPv4Address) -> None:
    assert (refusal(ip) is None) == (ip.is_global and not ip.is_multicast)


@given(st.integers(min_value=8, max_value=32), ipv4s, ipv4s)
def test_an_allowed_network_allows_exactly_its_addresses(
    prefix: int, base: IPv4Address, other: IPv4Address
) -> None:
    net = ip_network(f"{base}/{prefix}", strict=False)
    allow = parse_allowlist(str(net))
    assert allow.allows_address(base)
    assert allow.allows_address(other) == (other in net)


def test_the_settings_that_shape_the_guard() -> None:
    def settings(**values: object) -> Settings:
        return Settings.model_validate({"secret_key": "k" * 40, **values})

    assert settings(sandbox=True).outbound_loopback_ok
    assert not settings(sandbox=False).outbound_loopback_ok
    assert not settings(sandbox=True, outbound_allow_loopback=False).outbound_loopback_ok
    assert settings(sandbox=False, outbound_allow_loopback=True).outbound_loopback_ok
    guard = guard_for(settings(sandbox=False, outbound_allow="files.corp, 10.0.0.0/8"))
    assert guard.allow.allows_host("files.corp") and not guard.allow_loopback
    with pytest.raises(ValidationError, match="not a host name"):
        settings(outbound_allow="files.corp, not a host")


async def test_the_system_resolver_takes_an_address_as_it_is() -> None:
    """No resolver call (a thread hop in asyncio) for a host that is an address."""
    assert await system_resolver("127.0.0.1", 443) == [IPv4Address("127.0.0.1")]
    assert await system_resolver("::1", 443) == [IPv6Address("::1")]
    assert await system_resolver("[2001:db8::1]", 443) == [IPv6Address("2001:db8::1")]
    assert IPv4Address("127.0.0.1") in await system_resolver("localhost", 443)


class SocketStream(FakeStream):
    """A connection over a real socket pair, counting the attribute lookups."""

    def __init__(self, net: RecordingNetwork, sock: socket.socket) -> None:
        super().__init__(net)
        self.sock = sock
        self.lookups: list[str] = []

    def get_extra_info(self, info: str) -> Any:
        self.lookups.append(info)
        if info == "socket":
            return self.sock
        return "inner" if info == "server_addr" else None


async def test_a_connection_tells_whether_it_is_readable_from_its_socket_looked_up_once() -> None:
    """httpcore asks every idle pooled connection whether it is readable (the server
    closed it) at each request; the guard's connections answer from the socket they
    looked up once, instead of anyio's whole attribute table each time."""
    ours, theirs = socket.socketpair()
    stream = SocketStream(RecordingNetwork(), ours)

    class OneSocket(RecordingNetwork):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            return stream

    backend = _GuardedBackend(OutboundGuard(resolver=FakeResolver()), OneSocket())
    try:
        conn = await backend.connect_tcp("files.example", 443)
        assert [conn.get_extra_info("is_readable") for _ in range(5)] == [False] * 5
        theirs.close()  # the server hangs up: the next read would return b""
        assert conn.get_extra_info("is_readable") is True
        assert stream.lookups == ["socket"]  # once, at connect; never per check
        assert conn.get_extra_info("server_addr") == "inner"  # the rest: the stream's
        tls = await conn.start_tls(ssl.create_default_context(), "files.example")
        assert tls.get_extra_info("is_readable") is True
    finally:
        ours.close()
        theirs.close()


def test_sniffio_is_installed_for_httpcore() -> None:
    """httpcore imports sniffio on every request; missing, each of those imports
    searched the whole sys.path (about 40% of a callback POST's CPU, measured)."""
    assert importlib.util.find_spec("sniffio") is not None
