"""Scheduler ticks against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from orchid_jobs_support import queue_manual, seed_pair
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from engine.queue import QueueNames, decode_envelope
from mockapi.server import MockApi
from scheduler.tick import Scheduler
from store import executions_repo
from store.tables import Config, Execution, Plan

NAMES = QueueNames(stream="test:jobs", group="test-workers")


def _scheduler(sessions: async_sessionmaker[AsyncSession], redis: Redis, **options: timedelta) -> Scheduler:
    return Scheduler(sessions, redis, NAMES, poll_interval_s=30, **options)


async def _executions(sessions: async_sessionmaker[AsyncSession]) -> list[Execution]:
    async with sessions.begin() as session:
        return list(await session.scalars(select(Execution).order_by(Execution.created_at)))


async def _jobs(redis: Redis) -> list[str]:
    return [decode_envelope(fields).job_id for _, fields in await redis.xrange(NAMES.stream)]


async def _finish_all(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        for row in await session.scalars(select(Execution).where(Execution.status == "queued")):
            await executions_repo.start_attempt(session, row.tenant_id, row.id, worker="w")
            await executions_repo.finish(session, row.tenant_id, row.id, status="success")


async def test_due_pairs_are_enqueued_once(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    first = await seed_pair(sessions, base_url=api.url, wait_seconds=3600)
    await seed_pair(sessions, base_url=api.url, wait_seconds=3600)  # a second config of the same plan
    await seed_pair(sessions, base_url=api.url, plan_key="manual-only")  # no wait_seconds; a 3rd config
    scheduler = _scheduler(sessions, redis)

    result = await scheduler.tick()
    assert (result.locked, result.enqueued) == (True, 3)  # "items" x the integration's 3 configs
    rows = await _executions(sessions)
    assert {(r.plan_key, r.trigger, r.status) for r in rows} == {("items", "schedule", "queued")}
    assert all(r.enqueued_at is not None and r.trace_context.get("traceparent") for r in rows)
    assert sorted(await _jobs(redis)) == sorted(str(r.id) for r in rows)
    envelope = decode_envelope((await redis.xrange(NAMES.stream))[0][1])
    assert envelope.traceparent and envelope.tenant_id == first.tenant_id

    assert (await scheduler.tick()).enqueued == 0  # queued: not again
    await _finish_all(sessions)
    assert (await scheduler.tick()).enqueued == 0  # ran moments ago: not due for an hour


async def test_a_pair_is_due_again_after_wait_seconds(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    await seed_pair(sessions, base_url=api.url, wait_seconds=1)
    scheduler = _scheduler(sessions, redis)
    assert (await scheduler.tick()).enqueued == 1
    await _finish_all(sessions)
    result = await scheduler.tick()
    assert result.enqueued == 0 and 0.2 <= result.next_wake_s <= 1.0  # wakes for the due time
    await asyncio.sleep(result.next_wake_s + 0.1)
    assert (await scheduler.tick()).enqueued == 1


async def test_disabled_plans_and_configs_are_skipped(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    pair = await seed_pair(sessions, base_url=api.url, wait_seconds=60)
    other = await seed_pair(sessions, base_url=api.url, wait_seconds=60, plan_key="other")
    async with sessions.begin() as session:
        await session.execute(update(Plan).where(Plan.id == pair.plan.id).values(enabled=False))
        await session.execute(update(Config).where(Config.id == other.config.id).values(enabled=False))
    # "items" is disabled; "other" still runs with the config of the first pair
    await _scheduler(sessions, redis).tick()
    rows = await _executions(sessions)
    assert [(r.plan_key, r.config_id) for r in rows] == [("other", pair.config.id)]


async def test_a_manual_run_in_progress_blocks_the_schedule(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    pair = await seed_pair(sessions, base_url=api.url, wait_seconds=60)
    await queue_manual(sessions, pair)
    assert (await _scheduler(sessions, redis).tick()).enqueued == 0


@pytest.fixture
async def other_sessions(jobs_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(jobs_dsn, poolclass=NullPool)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def test_two_schedulers_never_double_enqueue(
    sessions: async_sessionmaker[AsyncSession],
    other_sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    api: MockApi,
) -> None:
    for index in range(20):
        await seed_pair(
            sessions,
            base_url=api.url,
            wait_seconds=3600,
            plan_key=f"plan-{index}",
            integration=f"crm-{index}",
        )
    one, two = _scheduler(sessions, redis), _scheduler(other_sessions, redis)
    for _ in range(5):
        await asyncio.gather(one.tick(), two.tick(), one.tick(), two.tick())
    rows = await _executions(sessions)
    assert len(rows) == 20
    assert len({(r.plan_key, r.config_id) for r in rows}) == 20
    assert await redis.xlen(NAMES.stream) == 20


async def test_sweep_enqueues_executions_that_never_reached_redis(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    pair = await seed_pair(sessions, base_url=api.url)
    lost = await queue_manual(sessions, pair)  # committed, never enqueued (a crash in between)
    scheduler = _scheduler(sessions, redis, sweep_min_age=timedelta(seconds=0))
    result = await scheduler.tick()
    assert result.reenqueued == 1
    assert await _jobs(redis) == [str(lost.id)]
    async with sessions.begin() as session:
        confirmed = await session.scalar(select(Execution.enqueued_at).where(Execution.id == lost.id))
    assert confirmed is not None
    assert (await scheduler.tick()).reenqueued == 0
    assert await redis.xlen(NAMES.stream) == 1


async def test_sweep_pushes_a_lost_retry_with_its_attempt(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    async with sessions.begin() as session:  # attempt 1 failed, the retry was never parked
        await executions_repo.start_attempt(session, pair.tenant_id, execution.id, worker="w")
        await executions_repo.finish_attempt(session, pair.tenant_id, execution.id, 1, "failed")
        await session.execute(
            update(Execution)
            .where(Execution.id == execution.id)
            .values(status="queued", resume_at=func.now() - timedelta(seconds=1))
        )
    await _scheduler(sessions, redis, sweep_min_age=timedelta(seconds=0)).tick()
    (entry,) = await redis.xrange(NAMES.stream)
    envelope = decode_envelope(entry[1])
    assert (envelope.job_id, envelope.attempt) == (str(execution.id), 2)


async def test_redis_down_leaves_jobs_for_the_sweep(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    await seed_pair(sessions, base_url=api.url, wait_seconds=3600)
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    broken = Scheduler(sessions, dead, NAMES, poll_interval_s=30, sweep_min_age=timedelta(0))
    result = await broken.tick()  # decided and committed; the push failed and was logged
    assert (result.enqueued, result.reenqueued) == (0, 0)
    await dead.aclose()
    (row,) = await _executions(sessions)
    assert row.status == "queued" and row.enqueued_at is None
    healthy = _scheduler(sessions, redis, sweep_min_age=timedelta(0))
    result = await healthy.tick()
    assert (result.enqueued, result.reenqueued) == (0, 1)
    assert await _jobs(redis) == [str(row.id)]
