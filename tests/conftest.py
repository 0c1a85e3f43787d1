"""Session fixtures that start the real servers Orchid talks to, from the pip-installed binaries.

Session-wide setup is synchronous and hands out addresses, never clients: an async client made
in one event loop breaks in another (STYLE 22). Each server binds 127.0.0.1 on a free port and
is stopped by the fixture that started it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.servers import KafkaBroker, Postgres, Redis


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
