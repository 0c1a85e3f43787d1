"""The egress policy. Only loopback is ever contacted here; refusals of private and link-local
destinations over the network run inside a network namespace (test_egress_netns.py)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from engine.egress import EgressPolicy, EgressResolver, address_class
from engine.errors import EgressDeniedError, InvalidUrlError
from engine.http_caller import build_http_caller
from engine.ports import HttpRequest
from mockapi import MockApi, json
from settings.model import EgressSettings, ExecutionLimits

# --- address classes (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "private (shared address space)"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "private"),  # TEST-NET-1 documentation range
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:0a00:0001::1", "private"),  # 6to4 wrapping 10.0.0.1
    ],
)
def test_non_public_addresses_are_classified(address: str, kind: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111"])
def test_public_addresses_have_no_class(address: str) -> None:
    assert address_class(ipaddress.ip_address(address)) is None


def test_refusal_names_host_address_and_class() -> None:
    with pytest.raises(
        EgressDeniedError, match=r"metadata\.internal \(169\.254\.169\.254\) denied: link-local"
    ):
        EgressPolicy().check_address("metadata.internal", ipaddress.ip_address("169.254.169.254"))


def test_allowlisted_cidr_opens_its_range_only() -> None:
    policy = EgressPolicy.from_allowlist(["10.0.0.0/8"])
    policy.check_address("db", ipaddress.ip_address("10.9.8.7"))
    with pytest.raises(EgressDeniedError):
        policy.check_address("db", ipaddress.ip_address("192.168.0.1"))


def test_allowlisted_hostname_opens_whatever_it_resolves_to() -> None:
    policy = EgressPolicy.from_allowlist(["api.internal.example"])
    policy.check_address("API.internal.example.", ipaddress.ip_address("10.0.0.5"))
    with pytest.raises(EgressDeniedError):
        policy.check_address("other.internal.example", ipaddress.ip_address("10.0.0.5"))


def test_wildcard_allowlist_entry_opens_subdomains() -> None:
    policy = EgressPolicy.from_allowlist(["*.internal.example"])
    policy.check_address("a.b.internal.example", ipaddress.ip_address("10.0.0.5"))
    with pytest.raises(EgressDeniedError):
        policy.check_address("internal.example.evil.com", ipaddress.ip_address("10.0.0.5"))


class _FixedResolver(AbstractResolver):
    """Answers every lookup with the given addresses; no DNS traffic."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_refuses_a_host_if_any_of_its_addresses_is_internal() -> None:
    resolver = EgressResolver(EgressPolicy(), _FixedResolver("93.184.216.34", "10.0.0.7"))
    with pytest.raises(EgressDeniedError, match=r"rebind\.example \(10\.0\.0\.7\) denied: private"):
        await resolver.resolve("rebind.example", 80)


async def test_resolver_passes_public_addresses_through() -> None:
    resolver = EgressResolver(EgressPolicy(), _FixedResolver("93.184.216.34"))
    assert [result["host"] for result in await resolver.resolve("example.com", 443)] == ["93.184.216.34"]


# --- real requests, loopback only --------------------------------------------------------------


async def test_loopback_is_refused_by_default(mock_api: MockApi) -> None:
    mock_api.route("GET", "/x", json({}))
    async with build_http_caller(ExecutionLimits(), EgressSettings()) as http:
        with pytest.raises(EgressDeniedError, match=r"127\.0\.0\.1 denied: loopback"):
            await http.send(HttpRequest("GET", f"{mock_api.url}/x"))
    assert mock_api.requests() == []


async def test_localhost_name_is_refused_by_default_after_resolution(mock_api: MockApi) -> None:
    async with build_http_caller(ExecutionLimits(), EgressSettings()) as http:
        with pytest.raises(EgressDeniedError, match=r"localhost \((127\.0\.0\.1|::1)\) denied: loopback"):
            await http.send(HttpRequest("GET", f"http://localhost:{mock_api.port}/x"))
    assert mock_api.requests() == []


async def test_ipv4_mapped_loopback_literal_is_refused(mock_api: MockApi) -> None:
    async with build_http_caller(ExecutionLimits(), EgressSettings()) as http:
        with pytest.raises(EgressDeniedError, match="loopback"):
            await http.send(HttpRequest("GET", f"http://[::ffff:127.0.0.1]:{mock_api.port}/x"))
    assert mock_api.requests() == []


async def test_numeric_ipv4_forms_never_reach_loopback(mock_api: MockApi) -> None:
    async with build_http_caller(ExecutionLimits(), EgressSettings()) as http:
        for host in ("2130706433", "0x7f000001", "127.1"):
            with pytest.raises((EgressDeniedError, InvalidUrlError)):
                await http.send(HttpRequest("GET", f"http://{host}:{mock_api.port}/x"))
    assert mock_api.requests() == []


async def test_allowlisted_ip_opens_loopback(mock_api: MockApi) -> None:
    mock_api.route("GET", "/x", json({"ok": True}))
    async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.1",))) as http:
        response = await http.send(HttpRequest("GET", f"{mock_api.url}/x"))
    assert response.body == {"ok": True}


async def test_allowlisted_cidr_opens_loopback(mock_api: MockApi) -> None:
    mock_api.route("GET", "/x", json({"ok": True}))
    async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.0/8",))) as http:
        response = await http.send(HttpRequest("GET", f"{mock_api.url}/x"))
    assert response.status_code == 200


async def test_allowlisted_hostname_opens_localhost(mock_api: MockApi) -> None:
    mock_api.route("GET", "/x", json({"ok": True}))
    async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("localhost",))) as http:
        response = await http.send(HttpRequest("GET", f"http://localhost:{mock_api.port}/x"))
    assert response.status_code == 200
