"""Readiness follows a real Postgres and a real Redis: NOT_SERVING while either is down, SERVING
once both are back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from orchid.v1 import ops_pb2, ops_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.servers import Postgres, Redis
from server.__main__ import redis_client
from server.health import DependencyProbe, HealthMonitor, HealthReporter, postgres_probe, redis_probe
from settings.model import RedisSettings
from tests.edge.helpers import eventually
from tests.edge.support import running_server

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def probe_engine(edge_postgres: Postgres) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        edge_postgres.dsn, pool_size=1, max_overflow=0, connect_args={"timeout": 1, "command_timeout": 1}
    )
    yield engine
    await engine.dispose()


async def test_health_follows_postgres(edge_postgres: Postgres, probe_engine: AsyncEngine) -> None:
    reporter = HealthReporter(version="test")
    monitor = HealthMonitor(
        reporter, [DependencyProbe("database", postgres_probe(probe_engine))], interval_s=0.2, timeout_s=1.0
    )
    async with (
        running_server(reporter=reporter) as (_, port, _r),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        await monitor.start()
        try:
            health = health_pb2_grpc.HealthStub(ch)
            ops = ops_pb2_grpc.OpsServiceStub(ch)

            async def status_is(expected: int) -> bool:
                statuses = [
                    (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status
                    for name in ("", "orchid.v1.PlanService", "orchid.v1.OpsService")
                ]
                return all(status == expected for status in statuses)

            await eventually(lambda: status_is(SERVING), what="SERVING with Postgres up")
            reply = await ops.Health(ops_pb2.HealthRequest(), timeout=5)
            assert [(c.name, c.status, c.required) for c in reply.checks] == [
                ("database", ops_pb2.SERVING_STATUS_SERVING, True)
            ]

            await asyncio.to_thread(edge_postgres.stop)
            await eventually(lambda: status_is(NOT_SERVING), what="NOT_SERVING with Postgres down")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ops.Health(ops_pb2.HealthRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "database" in (err.value.details() or "")
            assert (await ops.Live(ops_pb2.LiveRequest(), timeout=5)).status == ops_pb2.SERVING_STATUS_SERVING

            await asyncio.to_thread(edge_postgres.start)
            await eventually(
                lambda: status_is(SERVING), timeout_s=30, what="SERVING after Postgres recovered"
            )
            assert (
                await ops.Health(ops_pb2.HealthRequest(), timeout=5)
            ).status == ops_pb2.SERVING_STATUS_SERVING
        finally:
            await monitor.stop()
            if not edge_postgres.running():
                edge_postgres.start()


async def test_graceful_shutdown_is_not_serving_for_good() -> None:
    reporter = HealthReporter()
    async with (
        running_server(reporter=reporter) as (_, port, _r),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        health = health_pb2_grpc.HealthStub(ch)
        await reporter.enter_graceful_shutdown()
        await reporter.update([])  # a probe that still passes does not flip it back
        reply = await health.Check(health_pb2.HealthCheckRequest(service="orchid.v1.PlanService"), timeout=5)
        assert reply.status == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ops_pb2_grpc.OpsServiceStub(ch).Health(ops_pb2.HealthRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def edge_redis(tmp_path: Path) -> Iterator[Redis]:
    """A Redis of this test's own, which it may stop and start."""
    server = Redis(tmp_path / "redis", appendonly=False)
    server.start()
    yield server
    server.stop()


async def test_health_follows_redis(edge_redis: Redis, probe_engine: AsyncEngine) -> None:
    """The server's probes (database and redis, as ``python -m server`` builds them): Redis down
    is NOT_SERVING although Postgres answers, and the reason names redis."""
    client = redis_client(RedisSettings(host="127.0.0.1", port=edge_redis.port), probe=True)
    reporter = HealthReporter(version="test")
    monitor = HealthMonitor(
        reporter,
        [
            DependencyProbe("database", postgres_probe(probe_engine)),
            DependencyProbe("redis", redis_probe(client)),
        ],
        interval_s=0.2,
        timeout_s=1.0,
    )
    async with (
        running_server(reporter=reporter) as (_, port, _r),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        await monitor.start()
        try:
            health = health_pb2_grpc.HealthStub(ch)
            ops = ops_pb2_grpc.OpsServiceStub(ch)

            async def status_is(expected: int) -> bool:
                reply = await health.Check(health_pb2.HealthCheckRequest(service="orchid.v1.PlanService"))
                return bool(reply.status == expected)

            await eventually(lambda: status_is(SERVING), what="SERVING with Postgres and Redis up")
            reply = await ops.Health(ops_pb2.HealthRequest(), timeout=5)
            assert [(c.name, c.status) for c in reply.checks] == [
                ("database", ops_pb2.SERVING_STATUS_SERVING),
                ("redis", ops_pb2.SERVING_STATUS_SERVING),
            ]

            await asyncio.to_thread(edge_redis.stop)
            await eventually(lambda: status_is(NOT_SERVING), timeout_s=5, what="NOT_SERVING with Redis down")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ops.Health(ops_pb2.HealthRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            details = err.value.details() or ""
            assert "redis" in details and "database" not in details, details

            await asyncio.to_thread(edge_redis.start)
            await eventually(lambda: status_is(SERVING), timeout_s=15, what="SERVING after Redis is back")
        finally:
            await monitor.stop()
            await client.aclose()
