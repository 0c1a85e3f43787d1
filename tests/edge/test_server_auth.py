"""The server's tenant interceptor, talked to directly (no Envoy), on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from orchid.v1 import ops_pb2, ops_pb2_grpc, plans_pb2, plans_pb2_grpc

from devstack.jwt import DEV_AUDIENCE, DEV_ISSUER, DevKeyring
from server.auth import Caller, TenantAuthInterceptor, TokenVerifier, current_caller
from server.metrics import MetricsInterceptor
from settings.model import AuthSettings
from tests.edge.helpers import grpc_bearer
from tests.edge.support import running_server


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    async with running_server() as (_, port, _reporter), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


async def get_plan(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> dict[str, object]:
    plan = await plans_pb2_grpc.PlanServiceStub(channel).GetPlan(
        plans_pb2.GetPlanRequest(key="k"), metadata=metadata, timeout=5
    )
    result: dict[str, object] = json.loads(plan.description)
    return result


async def test_tenant_and_roles_come_from_the_envoy_headers(channel: grpc.aio.Channel) -> None:
    metadata = (("x-orchid-tenant-id", "tn_123"), ("x-orchid-roles", "reader,orchid:admin"))
    assert await get_plan(channel, metadata) == {
        "tenant": "tn_123",
        "roles": ["orchid:admin", "reader"],
        "admin": True,
    }


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("x-orchid-tenant-id", ""),),
        (("x-orchid-tenant-id", "bad tenant/with spaces"),),
        (("x-orchid-tenant-id", "tn_a"), ("x-orchid-tenant-id", "tn_b")),
    ],
    ids=["missing", "empty", "malformed", "conflicting"],
)
async def test_no_usable_tenant_is_unauthenticated(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get_plan(channel, metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_ops_and_reflection_need_no_tenant(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == 1
    live = await ops_pb2_grpc.OpsServiceStub(channel).Live(ops_pb2.LiveRequest(), timeout=5)
    assert live.status == ops_pb2.SERVING_STATUS_SERVING


async def test_caller_is_unset_outside_an_rpc() -> None:
    from engine.errors import UnauthenticatedError

    with pytest.raises(UnauthenticatedError):
        current_caller()


def test_caller_value() -> None:
    assert Caller("t").roles == frozenset()


@pytest.fixture
def verifying(tmp_path: Path) -> tuple[DevKeyring, TenantAuthInterceptor]:
    keys = DevKeyring(tmp_path / "jwt")
    settings = AuthSettings(
        enabled=True, issuer_url=DEV_ISSUER, client_id=DEV_AUDIENCE, jwks_file=str(keys.jwks_path)
    )
    return keys, TenantAuthInterceptor.from_settings(settings)


async def test_auth_enabled_takes_the_tenant_from_the_token_and_ignores_the_header(
    verifying: tuple[DevKeyring, TenantAuthInterceptor],
) -> None:
    keys, interceptor = verifying
    async with (
        running_server(interceptors=[MetricsInterceptor(), interceptor]) as (_, port, _r),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        metadata = (
            *grpc_bearer(keys.mint("tn_123", roles=["orchid:admin"])),
            ("x-orchid-tenant-id", "tn_victim"),
        )
        assert await get_plan(channel, metadata) == {
            "tenant": "tn_123",
            "roles": ["orchid:admin"],
            "admin": True,
        }

        rotated = keys.rotate()  # the file is reread when a token names a kid it has not seen
        assert (await get_plan(channel, grpc_bearer(keys.mint("tn_456", kid=rotated.kid))))[
            "tenant"
        ] == "tn_456"

        for bad in (
            (("x-orchid-tenant-id", "tn_123"),),  # a header alone is not enough
            grpc_bearer(keys.mint("tn_123", expires_in=-120)),
            grpc_bearer(keys.mint("tn_123", audience="other")),
            grpc_bearer(keys.mint("tn_123", issuer="https://evil.example/")),
            grpc_bearer(keys.mint(None)),
            grpc_bearer(DevKeyring(keys.root.parent / "other").mint("tn_123")),
            (("authorization", "Basic dXNlcjpwYXNz"),),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await get_plan(channel, bad)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, bad


async def test_verifier_with_a_jwks_uri(tmp_path: Path) -> None:
    from devstack.jwks_server import JwksServer

    keys = DevKeyring(tmp_path / "jwt")
    server = JwksServer(keys.jwks_path)
    server.start()
    try:
        verifier = TokenVerifier(issuer=DEV_ISSUER, audience=DEV_AUDIENCE, jwks_uri=server.uri)
        claims = await verifier.verify(keys.mint("tn_123"))
        assert claims["tenant_id"] == "tn_123"
    finally:
        server.stop()


def test_auth_enabled_without_jwks_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="AUTH_JWKS"):
        TenantAuthInterceptor.from_settings(AuthSettings(enabled=True, issuer_url="i", client_id="a"))
