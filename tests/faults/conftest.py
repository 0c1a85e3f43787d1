"""The fault tests share the worker tests' fixtures and helpers (tests/worker)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))

from orchid_jobs_support import api, jobs_dsn, redis, sessions, tracer_provider

__all__ = ["api", "jobs_dsn", "redis", "sessions", "tracer_provider"]

import os
from collections.abc import Iterator

import pytest
from fault_support import Processes, stack_env

from devstack.servers import KafkaBroker, Postgres
from devstack.servers import Redis as RedisServer


@pytest.fixture
def processes(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: Postgres,
    redis_server: RedisServer,
    kafka_broker: KafkaBroker,
    jobs_dsn: str,
) -> Iterator[Processes]:
    logs = tmp_path_factory.mktemp("processes")
    procs = Processes(logs, stack_env(postgres_server, redis_server, kafka_broker, jobs_dsn))
    yield procs
    procs.stop_all()
    if os.environ.get("ORCHID_SHOW_PROCESS_LOGS"):
        for log in sorted(logs.glob("*.log")):
            print(f"===== {log.name}\n{log.read_text(errors='replace')[-4000:]}")
