"""The caller's address, as rate limits key it.

The peer of the TCP connection, unless that peer is a trusted proxy (`GLIMPSE_TRUSTED_PROXIES`): then the
right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries further left were written by
the client and are never believed. A malformed header from a trusted peer is ignored (the peer is the
caller), never an error. IPv6 callers are keyed by their /64: one host usually holds a whole /64 and could
otherwise take a fresh bucket per address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 16  # entries read from the right of X-Forwarded-For; a longer chain is treated as malformed
IPV6_CLIENT_PREFIX = 64
UNKNOWN = "unknown"


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses); raises ValueError for one that is neither."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def parse_address(value: str) -> IPAddress | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:443`); None when it is not one."""
    text = value.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    def __init__(self, trusted_proxies: Sequence[IPNetwork] = ()) -> None:
        self._trusted = tuple(trusted_proxies)

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._trusted)

    def client_of(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> IPAddress | None:
        """The caller's address: `peer`, or what trusted proxies say in front of it; None when unknown."""
        address = parse_address(peer) if peer else None
        if address is None or not self._trusted or not self.is_trusted(address):
            return address
        hops = [hop for header in forwarded_for for hop in header.split(",")]
        client = address
        for hop in reversed(hops[-MAX_HOPS:]):
            forwarded = parse_address(hop)
            if forwarded is None:
                return address  # malformed: believe only the peer, never a guess
            client = forwarded
            if not self.is_trusted(client):
                return client
        return client  # every hop read is a trusted proxy: the left-most is the closest to the caller we know

    def key_of(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The rate-limit key of a caller: its address, its /64 for IPv6."""
        address = self.client_of(peer, forwarded_for)
        return UNKNOWN if address is None else address_key(address)


def address_key(address: IPAddress) -> str:
    """What one host is counted as: its address, its /64 for IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)
