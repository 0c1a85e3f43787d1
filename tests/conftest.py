"""Session fixtures that start the real servers Orchid talks to, from the pip-installed binaries.

Session-wide setup is synchronous and hands out addresses, never clients: an async client made
in one event loop breaks in another (STYLE 22). Each server binds 127.0.0.1 on a free port and
is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis as RedisClient

from devstack.servers import KafkaBroker, Postgres, Redis, ensure_database


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="orchid-test-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def postgres_server(stack_root: Path) -> Iterator[Postgres]:
    server = Postgres(stack_root / "postgres")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(stack_root: Path) -> Iterator[Redis]:
    server = Redis(stack_root / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_broker(stack_root: Path) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(stack_root / "kafka")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def migrated_database(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``migrated_database("orchid_x_test")`` -> the DSN of a database of that name, created on
    the session's Postgres (or on ORCHID_TEST_PG_DSN's server) and migrated by the production
    migrations, once per session."""
    from store.migrations import upgrade_head

    made: dict[str, str] = {}

    def make(name: str) -> str:
        if name not in made:
            base = os.environ.get("ORCHID_TEST_PG_DSN")
            if not base:
                server: Postgres = request.getfixturevalue("postgres_server")
                base = server.dsn
            made[name] = ensure_database(base, name)
            upgrade_head(made[name])
        return made[name]

    return make


@pytest.fixture
async def redis(redis_server: Redis) -> AsyncIterator[RedisClient]:
    """A client of the session's Redis, flushed for each test."""
    client = RedisClient.from_url(redis_server.url, socket_timeout=5)
    await client.flushdb()
    yield client
    await client.aclose()
