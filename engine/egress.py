"""Egress policy: a tenant's plan must not reach the service's own network.

Every destination is checked on the address the connection will actually use: hostnames are
resolved by ``EgressResolver`` (plugged into aiohttp's connector), every resolved address is
checked, and aiohttp connects to exactly the addresses the resolver returned, so a DNS answer
that changes between the check and the connect (DNS rebinding) cannot slip past. IP literals
never reach a resolver, so ``EgressPolicy.check_url_host`` checks them before each request and
each redirect hop.

Refused by default: loopback, private (RFC 1918, fc00::/7, 100.64/10), link-local (169.254/16,
including cloud metadata at 169.254.169.254, and fe80::/10), multicast, unspecified and every
other range that is not globally routable. ``EgressSettings.allowlist`` opens hostnames
(``api.internal.example``, ``*.internal.example``), single IPs and CIDR ranges.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from engine.errors import EgressDeniedError
from settings.model import EgressSettings

__all__ = ["EgressPolicy", "EgressResolver", "address_class"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# 100.64.0.0/10 (carrier-grade NAT) is neither is_private nor is_global in Python 3.11: name it.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_CLOUD_METADATA = ipaddress.ip_address("169.254.169.254")


def _unwrap(address: IpAddress) -> IpAddress:
    """An IPv4-mapped (::ffff:a.b.c.d) or 6to4-embedded address is checked as the IPv4 one it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_class(address: IpAddress) -> str | None:
    """Name the class of a non-public address ("loopback", "private"...), or None if it is public."""
    address = _unwrap(address)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address == _CLOUD_METADATA:
        return "link-local (cloud metadata)"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "private (shared address space)"
    if address.is_reserved:  # before is_private, which also covers 240.0.0.0/4
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def _parse_ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Decides whether a host and its addresses may be contacted."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_suffixes: tuple[str, ...] = ()  # from "*.example.com" entries, stored as ".example.com"
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: EgressSettings) -> EgressPolicy:
        return cls.from_allowlist(settings.allowlist)

    @classmethod
    def from_allowlist(cls, entries: Iterable[str]) -> EgressPolicy:
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IpNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        """True if the hostname itself is allow-listed: then any address it resolves to is fine."""
        name = host.lower().rstrip(".")
        return name in self.allowed_hosts or name.endswith(self.allowed_suffixes)

    def check_address(self, host: str, address: IpAddress) -> None:
        """Raise EgressDeniedError unless ``address`` (which ``host`` resolved to) may be contacted."""
        kind = address_class(address)
        if kind is None or self.host_allowed(host):
            return
        if any(address in network for network in self.allowed_networks):
            return
        unwrapped = _unwrap(address)
        if unwrapped is not address and any(unwrapped in network for network in self.allowed_networks):
            return
        shown = host if host == str(address) else f"{host} ({address})"
        raise EgressDeniedError(
            f"egress to {shown} denied: {kind} address; add the host or range to EGRESS_ALLOWLIST to allow it"
        )

    def check_url_host(self, host: str) -> None:
        """Check a URL's host before connecting. IP literals are decided here; hostnames are
        decided by EgressResolver once resolved (aiohttp does not resolve IP literals)."""
        address = _parse_ip(host.strip("[]"))
        if address is not None:
            self.check_address(host, address)


class EgressResolver(AbstractResolver):
    """aiohttp resolver that refuses a host if any of its addresses is not allowed.

    Refusing the whole host (rather than dropping the bad addresses) keeps the rule simple to
    state and to audit: a public name that also points inside is treated as hostile.
    """

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._policy.host_allowed(host):
            for result in results:
                address = _parse_ip(result["host"])
                if address is None:  # a resolver must hand back addresses; anything else is refused
                    raise EgressDeniedError(f"egress to {host} denied: resolver returned {result['host']!r}")
                self._policy.check_address(host, address)
        return results

    async def close(self) -> None:
        await self._inner.close()
