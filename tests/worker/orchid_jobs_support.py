"""Shared by the worker, scheduler and fault tests: a migrated database of their own, seeding
of plans and configs through the store's repositories, a recording sink and a deadline helper."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from devstack.servers import Postgres
from devstack.servers import Redis as RedisServer
from engine.ports import ExecutionEvent, ExecutionMeta, ResponseMessage
from mockapi.server import MockApi
from store import configs_repo, executions_repo, integrations_repo, plans_repo
from store.crypto import SecretBox
from store.migrations import upgrade_head
from store.records import (
    ConfigInput,
    ConfigRecord,
    ExecutionRecord,
    IntegrationInput,
    NewExecution,
    PlanInput,
    PlanRecord,
)
from store.tables import Base

TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)
SECRET_KEY = "tvb97WY1fU_hWbLz08LPGG4Z12Zzcw92QcscuvlF0Pw="


def migrated_database(base_dsn: str, name: str) -> str:
    """Create database ``name`` next to ``base_dsn`` (if missing), migrate it, return its DSN."""
    url = make_url(base_dsn)

    async def create() -> None:
        conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database="postgres")
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    dsn = url.set(database=name).render_as_string(hide_password=False)
    upgrade_head(dsn)
    return dsn


async def truncate_all(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        await session.execute(text(f"TRUNCATE {TABLES} CASCADE"))


def secret_box() -> SecretBox:
    return SecretBox([SECRET_KEY])


def simple_plan(key: str = "items", path: str = "/items") -> dict[str, Any]:
    return {"key": key, "step": {"url": "{config.base_url}" + path, "method": "GET"}}


@dataclass(frozen=True)
class Pair:
    tenant_id: str
    plan: PlanRecord
    config: ConfigRecord


async def seed_pair(
    sessions: async_sessionmaker[AsyncSession],
    *,
    base_url: str,
    tenant_id: str = "tenant-1",
    plan_key: str = "items",
    definition: dict[str, Any] | None = None,
    wait_seconds: int | None = None,
    enabled: bool = True,
    integration: str = "crm",
    config_name: str | None = None,
    config_values: dict[str, Any] | None = None,
) -> Pair:
    async with sessions.begin() as session:
        found = await integrations_repo.find_by_name(session, tenant_id, integration)
        if found is None:
            found = await integrations_repo.create(session, tenant_id, IntegrationInput(name=integration))
        config = await configs_repo.create(
            session,
            tenant_id,
            ConfigInput(
                integration_id=found.id,
                name=config_name or f"cfg-{uuid.uuid4().hex[:8]}",
                values={"base_url": base_url} | (config_values or {}),
                enabled=True,
            ),
            secrets=secret_box(),
        )
        try:
            plan = await plans_repo.get(session, tenant_id, plan_key)
        except Exception:
            plan = await plans_repo.create(
                session,
                tenant_id,
                PlanInput(
                    key=plan_key,
                    definition=definition or simple_plan(plan_key),
                    integration_name=integration,
                    wait_seconds=wait_seconds,
                    enabled=enabled,
                ),
            )
    return Pair(tenant_id, plan, config)


async def queue_manual(sessions: async_sessionmaker[AsyncSession], pair: Pair) -> ExecutionRecord:
    async with sessions.begin() as session:
        record, _ = await executions_repo.create(
            session,
            pair.tenant_id,
            NewExecution(
                plan_key=pair.plan.key,
                plan_id=pair.plan.id,
                config_id=pair.config.id,
                integration="crm",
                trigger="manual",
            ),
        )
    return record


async def get_execution(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, execution_id: uuid.UUID
) -> ExecutionRecord:
    async with sessions.begin() as session:
        return await executions_repo.get(session, tenant_id, execution_id)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s}s: {what}")
        await asyncio.sleep(0.05)


@dataclass
class RecordingSink:
    """A ResponseSink that keeps every message (for tests that do not look at Kafka itself)."""

    responses: list[tuple[ExecutionMeta, ResponseMessage, bool]] = field(default_factory=list)
    events: list[tuple[ExecutionMeta, ExecutionEvent]] = field(default_factory=list)

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        self.responses.append((meta, message, error))

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        self.events.append((meta, event))

    async def flush(self) -> None:
        return None


# --- fixtures (imported by the conftest.py of tests/worker, tests/scheduler, tests/faults) ----


@pytest.fixture(scope="session", autouse=True)
def tracer_provider() -> TracerProvider:
    """An SDK provider, so spans (and the traceparents the jobs carry) are real."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, socket_timeout=5)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def jobs_dsn(postgres_server: Postgres) -> str:
    return migrated_database(postgres_server.dsn, "orchid_jobs_test")


@pytest.fixture
async def sessions(jobs_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(jobs_dsn, poolclass=NullPool)
    made = async_sessionmaker(engine, expire_on_commit=False)
    await truncate_all(made)
    yield made
    await engine.dispose()


@pytest.fixture
async def api() -> AsyncIterator[MockApi]:
    async with MockApi() as server:
        yield server
