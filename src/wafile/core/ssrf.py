"""Which addresses a server that fetches its clients' URLs may reach (the SSRF rules).

Pure: no resolution here. `host_address` reads a host the way the C library would
(so `2130706433`, `0x7f000001`, `017700000001` and `127.1` are all 127.0.0.1, never a
name to look up), `refusal` names the rule an address breaks (None for a public
address), and `Allowlist` is the operator's exception list of hosts and networks.

An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
6to4, Teredo) is judged by the IPv4 address it carries as well: `::ffff:127.0.0.1`
reaches 127.0.0.1 on a dual-stack host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

__all__ = [
    "Address",
    "Allowlist",
    "Network",
    "host_address",
    "is_loopback_name",
    "parse_allowlist",
    "refusal",
]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})

# Named rules first (the message names the one that matched); anything else that is
# not globally routable falls under "reserved" at the end.
_V4_RULES: Final[tuple[tuple[IPv4Network, str], ...]] = tuple(
    (IPv4Network(net), rule)
    for net, rule in (
        ("0.0.0.0/8", "an unspecified address (0.0.0.0/8, 'this network')"),
        ("127.0.0.0/8", "a loopback address (127.0.0.0/8)"),
        ("10.0.0.0/8", "a private address (RFC 1918)"),
        ("172.16.0.0/12", "a private address (RFC 1918)"),
        ("192.168.0.0/16", "a private address (RFC 1918)"),
        ("169.254.169.254/32", "the cloud metadata address (link-local, 169.254.0.0/16)"),
        ("169.254.0.0/16", "a link-local address (169.254.0.0/16)"),
        ("100.64.0.0/10", "a shared address (carrier-grade NAT, 100.64.0.0/10)"),
        ("224.0.0.0/4", "a multicast address (224.0.0.0/4)"),
        ("255.255.255.255/32", "the broadcast address"),
    )
)
_V6_RULES: Final[tuple[tuple[IPv6Network, str], ...]] = tuple(
    (IPv6Network(net), rule)
    for net, rule in (
        ("::/128", "the unspecified address (::)"),
        ("::1/128", "a loopback address (::1)"),
        ("fc00::/7", "a private address (unique local, fc00::/7)"),
        ("fe80::/10", "a link-local address (fe80::/10)"),
        ("fec0::/10", "a site-local address (fec0::/10)"),
        ("ff00::/8", "a multicast address (ff00::/8)"),
    )
)
# IPv6 prefixes whose last 32 bits are an IPv4 address the packet ends up at.
_NAT64: Final = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
_V4_COMPATIBLE: Final = IPv6Network("::/96")


def host_address(host: str) -> Address | None:
    """The IP address a URL's host names literally, in any form the C library accepts;
    None for a name that needs resolving.

    IPv6 in brackets or bare, with or without a zone (`fe80::1%eth0`, `%25` in URLs);
    IPv4 as one to four parts, each decimal, octal (leading 0) or hex (0x).
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        text = text.split("%", 1)[0]  # the zone id says nothing about where it goes
        try:
            return IPv6Address(text)
        except ValueError:
            return None
    return _inet_aton(text.removesuffix("."))


def _inet_aton(text: str) -> IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        value = _number(part)
        if value is None:
            return None
        values.append(value)
    # a.b.c.d; a.b.c (c fills 16 bits); a.b (b fills 24 bits); a (32 bits).
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << (8 * (5 - len(values))) | last
    return IPv4Address(number)


def _number(part: str) -> int | None:
    if not part:
        return None
    base, digits = 10, part
    if part.startswith("0x"):
        base, digits = 16, part[2:]
        if not digits:
            return 0  # "0x" alone is 0 to inet_aton
    elif len(part) > 1 and part.startswith("0"):
        base, digits = 8, part[1:]
    allowed = "0123456789abcdef"[:base]
    if not digits or any(c not in allowed for c in digits):
        return None
    return int(digits, base)


def is_loopback_name(host: str) -> bool:
    """A host that names this machine: `localhost` or a loopback address in any form."""
    if host.strip().lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    ip = host_address(host)
    return ip is not None and ip.is_loopback


def refusal(ip: Address) -> str | None:
    """Why wafile must not connect to `ip` ("a private address (RFC 1918)"), or None
    when it is a public address."""
    if isinstance(ip, IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner = refusal(embedded)
            if inner is not None:
                kind = "an IPv4-mapped" if ip.ipv4_mapped is not None else "an IPv4-embedding"
                return f"{kind} form of {embedded}, {inner}"
            if ip.ipv4_mapped is not None:
                return None  # ::ffff:a.b.c.d is a.b.c.d itself, and that one is public
        for net6, rule in _V6_RULES:
            if ip in net6:
                return rule
    else:
        for net4, rule in _V4_RULES:
            if ip in net4:
                return rule
    if not ip.is_global:
        return "a reserved address (not globally routable)"
    return None


def _embedded_v4(ip: IPv6Address) -> IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client: where the packet is relayed to
    last32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64):
        return last32
    if ip in _V4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d (deprecated, still routed)
        return last32
    return None


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The operator's exceptions (`WAFILE_OUTBOUND_ALLOW`): hosts (`files.corp`,
    `*.corp` for any name under corp) whose addresses are trusted whatever they are,
    and networks (`10.1.2.0/24`, `10.1.2.3`) that may be reached by any name."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".corp" for "*.corp"
    networks: tuple[Network, ...] = ()

    def allows_host(self, host: str) -> bool:
        name = host.strip().lower().rstrip(".")
        return name in self.hosts or any(name.endswith(s) for s in self.suffixes)

    def allows_address(self, ip: Address) -> bool:
        candidates: list[Address] = [ip]
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            a in net for a in candidates for net in self.networks if a.version == net.version
        )

    def __bool__(self) -> bool:
        return bool(self.hosts or self.suffixes or self.networks)


def parse_allowlist(entries: str | Iterable[str]) -> Allowlist:
    """Comma-separated (or listed) hosts, `*.suffix` wildcards, addresses and CIDRs;
    `ValueError` naming the first entry that is none of them."""
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    hosts: set[str] = set()
    suffixes: list[str] = []
    networks: list[Network] = []
    for raw in items:
        entry = raw.strip().lower()
        if not entry:
            continue
        if "/" in entry or _plain_ip(entry):
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                raise ValueError(f"{raw.strip()!r} is not an address or network") from None
            continue
        wildcard = entry.startswith("*.")
        name = entry[2:] if wildcard else entry
        if not _is_hostname(name):
            raise ValueError(f"{raw.strip()!r} is not a host name, address or network")
        if wildcard:
            suffixes.append("." + name.rstrip("."))
        else:
            hosts.add(name.rstrip("."))
    return Allowlist(hosts=frozenset(hosts), suffixes=tuple(suffixes), networks=tuple(networks))


def _plain_ip(entry: str) -> bool:
    try:
        ipaddress.ip_address(entry.strip("[]"))
    except ValueError:
        return False
    return True


def _is_hostname(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return (
        0 < len(name) <= 253
        and all(0 < len(label) <= 63 for label in labels)
        and all(c.isalnum() or c in "-_" for label in labels for c in label)
        and all(c.isascii() for c in name)
        and host_address(name) is None  # `017700000001` is an address, not a name
    )
