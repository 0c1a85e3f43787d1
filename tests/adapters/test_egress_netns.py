"""Egress refusals of private and link-local destinations, run inside a network namespace that
has only loopback: if a refusal ever failed, the packet would have nowhere to go.

Needs root and ``ip`` (iproute2). The namespace gets its own /etc/hosts (via /etc/netns/<ns>/,
which ``ip netns exec`` bind-mounts) mapping test names to internal addresses, and a
resolv.conf pointing at loopback so no DNS query can leave either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.netns

PROBE = Path(__file__).with_name("netns_probe.py")
ROOT = Path(__file__).resolve().parents[2]
HOSTS = """127.0.0.1 localhost
10.20.30.40 intranet.test
169.254.169.254 metadata.test
"""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    if shutil.which("ip") is None:
        pytest.fail("`ip` (iproute2) is required for the egress namespace tests: apt-get install -y iproute2")
    if os.geteuid() != 0:
        pytest.fail("the egress namespace tests need root to create a network namespace")
    name = f"orchid-egress-test-{os.getpid()}"
    etc = Path("/etc/netns") / name
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(HOSTS)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    _ip("netns", "add", name)
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        links = _ip("netns", "exec", name, "ip", "-o", "link").stdout.splitlines()
        routes = _ip("netns", "exec", name, "ip", "route").stdout.strip()
        assert len(links) == 1 and ": lo:" in links[0], f"namespace must hold only loopback: {links}"
        assert routes == "", f"namespace must have no routes off loopback: {routes}"
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def probe(netns: str, url: str, *args: str) -> dict[str, Any]:
    command = ["ip", "netns", "exec", netns, sys.executable, str(PROBE), url, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "url", ["http://10.20.30.40/", "http://172.16.0.1/", "http://192.168.1.1:8080/", "http://[fc00::1]/"]
)
def test_private_address_is_refused(netns: str, url: str) -> None:
    result = probe(netns, url)
    assert (result["outcome"], result["error"]) == ("error", "EgressDeniedError")
    assert "private address" in result["message"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/"])
def test_link_local_address_is_refused(netns: str, url: str) -> None:
    result = probe(netns, url)
    assert result["error"] == "EgressDeniedError"
    assert "link-local" in result["message"]


def test_hostname_resolving_to_a_private_address_is_refused(netns: str) -> None:
    result = probe(netns, "http://intranet.test/")
    assert result["error"] == "EgressDeniedError"
    assert "intranet.test (10.20.30.40) denied: private address" in result["message"]


def test_hostname_resolving_to_cloud_metadata_is_refused(netns: str) -> None:
    result = probe(netns, "http://metadata.test/latest/meta-data/")
    assert result["error"] == "EgressDeniedError"
    assert "link-local (cloud metadata)" in result["message"]


def test_redirect_to_a_private_address_is_refused(netns: str) -> None:
    result = probe(netns, "http://10.20.30.40/admin", "--allow", "127.0.0.1", "--via-redirect")
    assert result["error"] == "EgressDeniedError"
    assert "10.20.30.40 denied: private address" in result["message"]


def test_allowlisted_private_range_is_attempted(netns: str) -> None:
    # Allowed, so the caller really connects; the namespace has no route, so that fails at once.
    result = probe(netns, "http://10.20.30.40/", "--allow", "10.0.0.0/8")
    assert result["error"] == "ConnectFailedError"


def test_unresolvable_host_becomes_connect_failed(netns: str) -> None:
    result = probe(netns, "http://no-such-host.test/")
    assert result["error"] == "ConnectFailedError"
    assert "could not resolve" in result["message"]
