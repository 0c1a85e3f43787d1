"""Fixtures of the monitoring tests: migrated Postgres, flushed Redis, a Kafka producer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from devstack.servers import KafkaBroker
from store.tables import Base


@pytest.fixture(scope="session")
def monitoring_dsn(migrated_database: Callable[[str], str]) -> str:
    return migrated_database("orchid_monitoring_test")


@pytest.fixture
async def sessions(monitoring_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(monitoring_dsn, poolclass=NullPool)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
def alerts_topic() -> str:
    return f"rate-limit-alerts-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def producer(kafka_broker: KafkaBroker) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=False)
    await client.start()
    yield client
    await client.stop()
