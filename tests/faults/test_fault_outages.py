"""Servers stopped for real while workers and a scheduler run: Redis restarted (persistence on),
PostgreSQL down for 10 s, the Kafka broker down for 10 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fault_support import Processes, pending_count, trigger
from orchid_jobs_support import eventually, seed_pair
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.servers import KafkaBroker, Postgres
from devstack.servers import Redis as RedisServer
from mockapi.responders import json
from mockapi.server import MockApi
from store import dlq_repo
from store.tables import Execution

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of this module's own: the outage test stops and restarts it, and Tansu's
    in-memory engine answers the first produces after a restart with UnknownError, which must
    not leak into the other suites that share the session's broker."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


async def _statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions.begin() as session:
        rows = await session.execute(select(Execution.status, func.count()).group_by(Execution.status))
        return {status: int(count) for status, count in rows}


async def _all_final(sessions: async_sessionmaker[AsyncSession], total: int) -> bool:
    try:
        counts = await _statuses(sessions)
    except Exception:
        return False
    return sum(counts.values()) >= total and not set(counts) & {"queued", "running"}


async def test_redis_restart_loses_no_job(
    processes: Processes,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    redis_server: RedisServer,
    api: MockApi,
) -> None:
    api.route("GET", "/items", json({"items": [1]}), latency=0.3)
    pair = await seed_pair(sessions, base_url=api.url)
    for name in ("w1", "w2"):
        processes.start("worker", name, WORKER_CONCURRENCY="2")
    executions = [await trigger(sessions, redis, pair) for _ in range(30)]

    async def some_done() -> bool:
        return (await _statuses(sessions)).get("success", 0) >= 5

    await eventually(some_done, 30, "first executions")
    await asyncio.to_thread(redis_server.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(redis_server.start)

    async def all_done() -> bool:
        return await _all_final(sessions, len(executions))

    await eventually(all_done, 90, "every execution final after the restart")
    assert await _statuses(sessions) == {"success": 30}

    async def drained() -> bool:
        return await pending_count(redis) == 0

    await eventually(drained, 15, "nothing pending")
    assert all(p.poll() is None for p in processes.running.values())  # reconnected, still running


async def test_postgres_outage_loses_nothing(
    processes: Processes,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    postgres_server: Postgres,
    api: MockApi,
) -> None:
    api.route("GET", "/items", json({"items": [1]}), latency=0.2)
    for index in range(10):
        await seed_pair(
            sessions, base_url=api.url, wait_seconds=2, plan_key=f"p{index}", integration=f"i{index}"
        )
    processes.start("scheduler", "sched", SCHEDULER_POLL_INTERVAL="1s")
    for name in ("w1", "w2"):
        processes.start("worker", name)

    async def running() -> bool:
        return (await _statuses(sessions)).get("success", 0) >= 10

    await eventually(running, 30, "scheduled runs before the outage")
    await asyncio.to_thread(postgres_server.stop)
    await asyncio.sleep(10)
    await asyncio.to_thread(postgres_server.start)
    async with sessions.begin() as session:
        after_restart = await session.scalar(select(func.now()))

    async def resumed() -> bool:
        async with sessions.begin() as session:
            fresh = await session.scalar(
                select(func.count())
                .select_from(Execution)
                .where(Execution.created_at > after_restart, Execution.status == "success")
            )
        return int(fresh or 0) >= 10

    await eventually(resumed, 40, "the scheduler and workers recovering")
    processes.terminate("sched")

    async def settled() -> bool:
        counts = await _statuses(sessions)
        return not set(counts) & {"queued", "running"}

    await eventually(settled, 40, "every execution final")
    counts = await _statuses(sessions)
    assert set(counts) == {"success"}, counts
    assert all(p.poll() is None for p in processes.running.values())

    async def drained() -> bool:
        return await pending_count(redis) == 0

    await eventually(drained, 15, "nothing pending")


async def test_kafka_outage_fails_runs_instead_of_losing_messages(
    processes: Processes,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    kafka_broker: KafkaBroker,
    api: MockApi,
) -> None:
    api.route("GET", "/items", json({"items": [1]}))
    pair = await seed_pair(sessions, base_url=api.url)
    processes.start("worker", "w1", JOB_MAX_ATTEMPTS="1", KAFKA_REQUEST_TIMEOUT_MS="2000")
    warmup = await trigger(sessions, redis, pair)

    async def warmed() -> bool:
        return (await _statuses(sessions)).get("success", 0) == 1

    await eventually(warmed, 30, "a run with the broker up")
    await asyncio.to_thread(kafka_broker.stop)
    down_since = time.monotonic()
    try:
        during = [await trigger(sessions, redis, pair) for _ in range(3)]

        async def failed() -> bool:
            return (await _statuses(sessions)).get("failed", 0) == 3

        await eventually(failed, 30, "runs that could not emit failing")
    finally:
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_since)))  # down for 10 s in all
        await asyncio.to_thread(kafka_broker.start)
    async with sessions.begin() as session:
        entries = (await dlq_repo.list_page(session, pair.tenant_id)).items
    assert {e.execution_id for e in entries} == {e.id for e in during}
    assert all(e.reason == "retries_exhausted" for e in entries)
    assert warmup.id not in {e.execution_id for e in entries}
    after = [await trigger(sessions, redis, pair) for _ in range(3)]

    async def recovered() -> bool:
        return (await _statuses(sessions)).get("success", 0) == 1 + len(after)

    await eventually(recovered, 60, "runs succeeding once the broker is back")
