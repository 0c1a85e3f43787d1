"""Real worker and scheduler processes (``python -m worker`` / ``python -m scheduler``) for the
fault tests, pointed at the session's servers through the environment, as `make dev` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchid_jobs_support import SECRET_KEY, Pair, queue_manual
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.servers import KafkaBroker, Postgres
from devstack.servers import Redis as RedisServer
from engine.queue import QueueNames, push_job
from server.job_queue import envelope_from_job
from server.ports import execution_job
from store.records import ExecutionRecord

REPO = Path(__file__).resolve().parents[2]
NAMES = QueueNames()


def stack_env(
    postgres: Postgres, redis: RedisServer, kafka: KafkaBroker, dsn: str, **overrides: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS_", "KAFKA_", "WORKER_"))}
    env.update(redis.env())
    env.update(kafka.env())
    env.update(
        {
            "DATABASE_URL": dsn,
            "SECRETS_ENCRYPTION_KEYS": SECRET_KEY,
            "EGRESS_ALLOWLIST": "127.0.0.1",
            "WORKER_METRICS_PORT": "0",
            "SCHEDULER_METRICS_PORT": "0",
            "WORKER_VISIBILITY_TIMEOUT": "3s",
            "WORKER_SHUTDOWN_GRACE": "5s",
            "WORKER_CONCURRENCY": "8",
            "JOB_MAX_ATTEMPTS": "3",
            "MAX_RETRY_BACKOFF": "1s",
            "KAFKA_REQUEST_TIMEOUT_MS": "3000",
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


@dataclass
class Processes:
    """Worker / scheduler subprocesses; every one still running is stopped at the end."""

    logs: Path
    env: Mapping[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, module: str, name: str, **overrides: str) -> subprocess.Popen[bytes]:
        env = dict(self.env) | {"REDIS_STREAMS_CONSUMER_NAME": name} | overrides
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = proc
        return proc

    def kill9(self, name: str) -> None:
        proc = self.running.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def terminate(self, name: str, timeout_s: float = 20) -> int:
        proc = self.running.pop(name)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout_s)

    def stop_all(self) -> None:
        for name in list(self.running):
            proc = self.running.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def log_of(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


async def trigger(sessions: async_sessionmaker[AsyncSession], redis: Redis, pair: Pair) -> ExecutionRecord:
    """What TriggerPlan does: a queued execution, then its job on the stream."""
    execution = await queue_manual(sessions, pair)
    await push_job(redis, NAMES, envelope_from_job(execution_job(execution)))
    return execution


async def pending_count(redis: Redis) -> int:
    try:
        summary = await redis.xpending(NAMES.stream, NAMES.group)
    except Exception:
        return -1
    return int(summary["pending"])
