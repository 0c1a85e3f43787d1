"""Real PostgreSQL for the store tests: the session's server (tests/conftest.py) or
ORCHID_TEST_PG_DSN, with a database of our own migrated once by the production migrations;
every test gets a fresh NullPool engine and empty tables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from devstack.servers import Postgres
from store.crypto import SecretBox, generate_key
from store.migrations import upgrade_head
from store.tables import Base

TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


def database_for(dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``dsn`` (if missing) and return its DSN."""
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
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def store_dsn(request: pytest.FixtureRequest) -> str:
    base = os.environ.get("ORCHID_TEST_PG_DSN")
    if not base:
        server: Postgres = request.getfixturevalue("postgres_server")
        base = server.dsn
    dsn = database_for(base, "orchid_store_test")
    upgrade_head(dsn)
    return dsn


@pytest.fixture
async def sessions(store_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(store_dsn, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
def secrets() -> SecretBox:
    return SecretBox([generate_key()])
