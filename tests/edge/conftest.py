"""Session fixtures for the edge tests: dev JWT keys, Envoy, and a Postgres of their own.

Envoy needs its upstream's port when it starts, so the session reserves one and each test's
grpc.aio server binds it (tests that do not go through Envoy bind port 0). Setup here is
synchronous and hands out addresses; every fixture stops what it started.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.envoy import Envoy, RemoteJwks
from devstack.jwks_server import JwksServer
from devstack.jwt import DevKeyring
from devstack.process import free_port
from devstack.servers import Postgres


@pytest.fixture(scope="session")
def edge_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="orchid-edge-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def jwt_keys(edge_root: Path) -> DevKeyring:
    """Signs the tokens Envoy accepts (its JWKS file is jwt_keys.jwks_path)."""
    return DevKeyring(edge_root / "jwt")


@pytest.fixture(scope="session")
def stranger_keys(edge_root: Path) -> DevKeyring:
    """A key Envoy has never seen: its tokens have a bad signature as far as Envoy knows."""
    return DevKeyring(edge_root / "jwt-stranger")


@pytest.fixture(scope="session")
def upstream_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def envoy(edge_root: Path, jwt_keys: DevKeyring, upstream_port: int) -> Iterator[Envoy]:
    proxy = Envoy(edge_root / "envoy", upstream_port=upstream_port, jwks_file=jwt_keys.jwks_path)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def rotating_keys(edge_root: Path) -> DevKeyring:
    return DevKeyring(edge_root / "jwt-rotating")


@pytest.fixture(scope="session")
def jwks_server(rotating_keys: DevKeyring) -> Iterator[JwksServer]:
    server = JwksServer(rotating_keys.jwks_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def remote_jwks_envoy(edge_root: Path, jwks_server: JwksServer, upstream_port: int) -> Iterator[Envoy]:
    """Envoy fetching its JWKS over HTTP and refreshing it every second (rotation tests)."""
    proxy = Envoy(
        edge_root / "envoy-remote",
        upstream_port=upstream_port,
        remote_jwks=RemoteJwks(jwks_server.uri, cache_s=1),
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def edge_postgres(edge_root: Path) -> Iterator[Postgres]:
    """A Postgres the health tests may stop and start without disturbing other tests."""
    server = Postgres(edge_root / "postgres")
    server.start()
    yield server
    server.stop()
