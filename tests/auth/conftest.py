"""Fixtures of the auth tests: a flushed Redis client, and a migrated Postgres database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from store.tables import Base


@pytest.fixture(scope="session")
def auth_dsn(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("orchid_auth_test")


@pytest.fixture
async def sessions(auth_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(auth_dsn, poolclass=NullPool)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()
