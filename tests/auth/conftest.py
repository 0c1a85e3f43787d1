"""Fixtures of the auth tests: a flushed Redis client, and a migrated Postgres database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from devstack.servers import Postgres
from devstack.servers import Redis as RedisServer
from store.migrations import upgrade_head
from store.tables import Base


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


def migrated_database(dsn: str, name: str) -> str:
    url = make_url(dsn)

    async def create() -> None:
        conn = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
        )
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    out = url.set(database=name).render_as_string(hide_password=False)
    upgrade_head(out)
    return out


@pytest.fixture(scope="session")
def auth_dsn(postgres_server: Postgres) -> str:
    return migrated_database(postgres_server.dsn, "orchid_auth_test")


@pytest.fixture
async def sessions(auth_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(auth_dsn, poolclass=NullPool)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()
