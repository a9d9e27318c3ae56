"""Which network addresses a URL fetch may reach: the public internet, plus what the operator
allow-lists (LOOKALIKE_FETCH_ALLOW). Pure functions: no DNS, no sockets.

The rules are written out as a table rather than read from `ipaddress`'s `is_private` and
friends, whose answers have changed between Python versions (IPv4-mapped IPv6 and the
100.64/10 shared space among them); `is_global` is only the last net under the table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

_RULES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("10.0.0.0/8", "in a private network"),
    ("100.64.0.0/10", "in the carrier-grade NAT shared space"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "in a private network"),
    ("192.0.0.0/24", "in a reserved network"),
    ("192.0.2.0/24", "in a documentation network"),
    ("192.168.0.0/16", "in a private network"),
    ("198.18.0.0/15", "in a reserved network"),
    ("198.51.100.0/24", "in a documentation network"),
    ("203.0.113.0/24", "in a documentation network"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "in a reserved network"),
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("100::/64", "in a reserved network"),
    ("2001::/32", "a Teredo tunnel address"),
    ("2001:db8::/32", "in a documentation network"),
    ("fc00::/7", "in a private network"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
RULES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), why) for network, why in _RULES)

# IPv6 forms that deliver to an IPv4 address: IPv4-compatible (::a.b.c.d) and NAT64
# (64:ff9b::a.b.c.d) here; mapped (::ffff:a.b.c.d) and 6to4 have ipaddress helpers.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 address stands for (mapped, compatible, NAT64, 6to4),
    or None for a plain IPv6 address (:: and ::1 are IPv6's own, not compatible forms)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: IPAddress) -> str | None:
    """Why a fetch may not connect to `address` (e.g. "in a private network"), or None when
    it is a public address. An IPv6 form of an IPv4 address is judged as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = refusal(inner)
            return None if reason is None else f"{reason} (the IPv4 address {inner})"
    for network, why in RULES:
        if address.version == network.version and address in network:
            return why
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class AllowList:
    """Host names and networks (LOOKALIKE_FETCH_ALLOW) that a fetch may reach whatever
    their address class and on any port: an operator's internal image hosts, or tests."""

    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Split entries into networks (an address or CIDR block) and host names."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            network = parse_network(entry)
            if network is None:
                hosts.add(normalise_host(entry))
            else:
                networks.append(network)
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        """Whether the URL's host name itself is listed (its addresses are then trusted)."""
        return normalise_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        """Whether the address lies in a listed network."""
        return any(address.version == network.version and address in network
                   for network in self.networks)


def parse_network(entry: str) -> IPNetwork | None:
    """An address or CIDR block as a network (host bits allowed), or None if it is neither."""
    try:
        return ipaddress.ip_network(entry.strip().strip("[]"), strict=False)
    except ValueError:
        return None


def normalise_host(host: str) -> str:
    """A host name as DNS compares it: lower case, no trailing dot."""
    return host.strip().lower().rstrip(".")


def allow_entry(entry: str) -> str:
    """An allow-list entry checked and normalised: a network in CIDR form or a host name;
    ValueError naming the entry otherwise (a typo must not silently allow nothing)."""
    network = parse_network(entry)
    if network is not None:
        return str(network)
    host = normalise_host(entry)
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"fetch allow-list entry {entry!r} is neither a host name nor an "
                         "address or CIDR network (e.g. images.internal, 10.1.2.3, 10.0.0.0/8)")
    return host
