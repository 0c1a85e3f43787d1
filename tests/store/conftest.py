"""Real PostgreSQL for the store tests: the session's server (tests/conftest.py) or
ORCHID_TEST_PG_DSN, with a database of our own migrated once by the production migrations;
every test gets a fresh NullPool engine and empty tables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from store.crypto import SecretBox, generate_key
from store.tables import Base

TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


@pytest.fixture(scope="session")
def store_dsn(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("orchid_store_test")


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
