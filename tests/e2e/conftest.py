"""End-to-end fixtures: one whole Orchid stack for the session, reached only through Envoy.

The session starts devstack.stack.Stack on free ports in a temporary directory, exactly like
``make dev``: Postgres, Redis and Kafka (Tansu) from their wheels, ``python -m store.migrate``,
``python -m server`` as a subprocess, Envoy with the stack's dev JWKS, then the demo API
(``python -m mockapi --scenario demo``), ``python -m scheduler`` and ``python -m worker``: plans
really run. Setup is synchronous and hands out addresses and tokens; clients are made per test
(STYLE 22).

Tests never truncate tables: every name and key carries a uuid suffix (``unique()``).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from devstack.jwt import DevKeyring
from devstack.stack import Ports, Stack
from tests.e2e.api import Api, GrpcTransport, RestTransport, Transport

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"
ADMIN_ROLE = "orchid:admin"
LAST_MARKER = "e2e_last"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{LAST_MARKER}: run after every other e2e test (it disturbs the stack)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every e2e test needs the real servers; the ones that stop Postgres run last."""
    e2e = Path(__file__).parent
    for item in items:
        if e2e in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.stack)
    items.sort(key=lambda item: item.get_closest_marker(LAST_MARKER) is not None)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True, slots=True)
class Tokens:
    """Real RS256 tokens from the stack's keyring (the JWKS Envoy verifies against)."""

    a: str
    b: str
    admin: str  # tenant A with the admin role
    keyring: DevKeyring


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="orchid-e2e-") as root:
        orchid = Stack(Path(root) / "stack", ports=Ports.free(), tenant=TENANT_A)
        orchid.start()
        try:
            yield orchid
        finally:
            orchid.stop()


@pytest.fixture(scope="session")
def tokens(stack: Stack) -> Tokens:
    return Tokens(
        a=stack.token(TENANT_A),
        b=stack.token(TENANT_B),
        admin=stack.token(TENANT_A, roles=(ADMIN_ROLE,)),
        keyring=stack.keyring,
    )


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.envoy}"


@pytest.fixture(scope="session")
def envoy_target(stack: Stack) -> str:
    return f"127.0.0.1:{stack.ports.envoy}"


@dataclass(frozen=True, slots=True)
class Apis:
    """The same transport as tenant A, tenant B, A's admin, or any token (None: no token)."""

    transport: Transport
    tokens: Tokens

    @property
    def name(self) -> str:
        return self.transport.name

    @property
    def a(self) -> Api:
        return Api(self.transport, self.tokens.a)

    @property
    def b(self) -> Api:
        return Api(self.transport, self.tokens.b)

    @property
    def admin(self) -> Api:
        return Api(self.transport, self.tokens.admin)

    def with_token(self, token: str | None, *, headers: dict[str, str] | None = None) -> Api:
        return Api(self.transport, token, headers=headers or {})


@pytest.fixture
async def rest(base_url: str, tokens: Tokens) -> AsyncIterator[Apis]:
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        yield Apis(RestTransport(client), tokens)


@pytest.fixture
async def grpc_api(envoy_target: str, tokens: Tokens) -> AsyncIterator[Apis]:
    async with grpc.aio.insecure_channel(envoy_target) as channel:
        yield Apis(GrpcTransport(channel), tokens)


@pytest.fixture(params=["rest", "grpc"])
async def api(
    request: pytest.FixtureRequest, base_url: str, envoy_target: str, tokens: Tokens
) -> AsyncIterator[Apis]:
    """Each test using it runs twice: REST through Envoy's transcoder, and native gRPC through Envoy."""
    if request.param == "rest":
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            yield Apis(RestTransport(client), tokens)
    else:
        async with grpc.aio.insecure_channel(envoy_target) as channel:
            yield Apis(GrpcTransport(channel), tokens)
