"""A real grpc.aio server on 127.0.0.1:0 with the resource servicers, over real PostgreSQL
(the session's server or ORCHID_TEST_PG_DSN, database orchid_server_test), and a real channel.
Tenants are passed as x-orchid-tenant-id metadata, as Envoy does after verifying the JWT."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from grpc_harness import Api, RecordingQueue  # type: ignore[import-not-found]  # tests/server is on sys.path
from orchid.v1 import (
    auth_flows_pb2_grpc,
    configs_pb2_grpc,
    dlq_pb2_grpc,
    executions_pb2_grpc,
    integrations_pb2_grpc,
    plans_pb2_grpc,
    rate_limits_pb2_grpc,
    statistics_pb2_grpc,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from server.app import create_server, default_interceptors
from server.services import build_servicers
from settings.model import AuthSettings, SecretsSettings, Settings
from store.crypto import generate_key
from store.tables import Base

TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


@pytest.fixture(scope="session")
def server_dsn(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("orchid_server_test")


@pytest.fixture
async def sessions(server_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(server_dsn, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def api(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    settings = Settings(secrets=SecretsSettings(keys=(generate_key(),)))
    queue = RecordingQueue()
    server, port = create_server(
        *build_servicers(sessions, settings, queue=queue),
        listen="127.0.0.1:0",
        interceptors=default_interceptors(AuthSettings()),
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Api(
            integrations=integrations_pb2_grpc.IntegrationServiceStub(channel),
            configs=configs_pb2_grpc.ConfigServiceStub(channel),
            auth_flows=auth_flows_pb2_grpc.AuthFlowServiceStub(channel),
            plans=plans_pb2_grpc.PlanServiceStub(channel),
            executions=executions_pb2_grpc.ExecutionServiceStub(channel),
            statistics=statistics_pb2_grpc.StatisticsServiceStub(channel),
            dlq=dlq_pb2_grpc.DlqServiceStub(channel),
            rate_limits=rate_limits_pb2_grpc.RateLimitServiceStub(channel),
            queue=queue,
            sessions=sessions,
        )
    await server.stop(None)
