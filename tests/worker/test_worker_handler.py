"""JobHandler against real PostgreSQL, Redis and a local HTTP API (the sink records messages)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from orchid_jobs_support import RecordingSink, get_execution, queue_manual, secret_box, seed_pair, simple_plan
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.http_caller import AiohttpCaller
from engine.limiter_memory import MemoryRateLimiter
from engine.queue import Envelope, QueueNames, decode_envelope, promote_due, publish_cancel
from mockapi.responders import json, sequence, status
from mockapi.server import MockApi
from settings.model import EgressSettings, ExecutionLimits
from store import dlq_repo, executions_repo, plans_repo, statistics_repo
from store.tables import PlanContext
from worker.cancel import CancelWatcher
from worker.consumer import Delivery
from worker.handler import Adapters, JobHandler

NAMES = QueueNames(stream="test:jobs", group="test-workers")
LIMITS = ExecutionLimits(max_retry_backoff_s=0.2, max_execution_time_s=20)


@pytest.fixture
async def http() -> AsyncIterator[AiohttpCaller]:
    caller = AiohttpCaller.open(LIMITS, EgressSettings(allowlist=("127.0.0.1",)))
    yield caller
    await caller.aclose()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def cancels(redis: Redis) -> CancelWatcher:
    return CancelWatcher(redis, NAMES, interval_s=0.1)


@pytest.fixture
def handler(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    http: AiohttpCaller,
    sink: RecordingSink,
    cancels: CancelWatcher,
) -> JobHandler:
    return JobHandler(
        sessions,
        redis,
        NAMES,
        Adapters(http=http, limiter=MemoryRateLimiter(), sink=sink),
        cancels,
        worker_name="worker-a",
        limits=LIMITS,
        max_attempts=2,
        secrets=secret_box(),
        rand=lambda: 0.5,
    )


def _delivery(record: object, attempt: int = 1) -> Delivery:
    execution = record  # an ExecutionRecord
    envelope = Envelope(
        job_id=str(execution.id),  # type: ignore[attr-defined]
        tenant_id=execution.tenant_id,  # type: ignore[attr-defined]
        plan_key=execution.plan_key,  # type: ignore[attr-defined]
        config_id=str(execution.config_id),  # type: ignore[attr-defined]
        attempt=attempt,
        trigger="manual",
    )
    return Delivery("1-0", envelope)


async def test_success_records_status_attempt_statistics_and_context(
    handler: JobHandler, sessions: async_sessionmaker[AsyncSession], api: MockApi, sink: RecordingSink
) -> None:
    api.route("GET", "/items", json({"items": [1, 2, 3], "cursor": "c2"}))
    definition = simple_plan()
    definition["step"]["context_updates"] = {"cursor": "response.body.cursor"}
    pair = await seed_pair(sessions, base_url=api.url, definition=definition)
    execution = await queue_manual(sessions, pair)

    await handler(_delivery(execution))

    done = await get_execution(sessions, pair.tenant_id, execution.id)
    assert done.status == "success" and done.started_at and done.finished_at
    (attempt,) = done.attempts
    assert (attempt.attempt, attempt.worker, attempt.outcome) == (1, "worker-a", "success")
    assert done.stats["requests"] == 1
    async with sessions.begin() as session:
        stats = await statistics_repo.get(session, pair.tenant_id, pair.plan.key, pair.config.id)
        context = await statistics_repo.get_context(session, pair.tenant_id, pair.plan.id, pair.config.id)
    assert (stats.success_count, stats.failure_count, stats.api_calls) == (1, 0, 1)
    assert stats.last_execution_id == execution.id
    assert context == {"cursor": "c2"}
    assert len(sink.responses) == 1
    assert [e.type for _, e in sink.events] == ["execution.started", "execution.completed"]


async def test_failure_is_retried_then_dead_lettered_with_its_history(
    handler: JobHandler, sessions: async_sessionmaker[AsyncSession], api: MockApi, redis: Redis
) -> None:
    api.route("GET", "/items", status(404))
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)

    await handler(_delivery(execution))
    queued = await get_execution(sessions, pair.tenant_id, execution.id)
    assert queued.status == "queued" and queued.attempts[0].outcome == "failed"
    assert queued.resume_at is not None and queued.enqueued_at is None
    assert await redis.zcard(NAMES.delayed) == 1
    await asyncio.sleep(0.3)
    assert await promote_due(redis, NAMES, now=queued.resume_at.replace(year=2100)) == 1
    ((_, entries),) = await redis.xread({NAMES.stream: "0"})
    retry = decode_envelope(entries[0][1])
    assert (retry.job_id, retry.attempt) == (str(execution.id), 2)

    await handler(Delivery("2-0", retry))
    failed = await get_execution(sessions, pair.tenant_id, execution.id)
    assert failed.status == "failed"
    assert [a.outcome for a in failed.attempts] == ["failed", "failed"]
    async with sessions.begin() as session:
        page = await dlq_repo.list_page(session, pair.tenant_id)
        stats = await statistics_repo.get(session, pair.tenant_id, pair.plan.key, pair.config.id)
        context = await session.scalar(select(PlanContext))
    (entry,) = page.items
    assert entry.reason == "retries_exhausted" and entry.execution_id == execution.id
    assert [a.attempt for a in entry.attempts] == [1, 2]
    assert entry.last_error is not None and "404" in entry.last_error.message
    assert entry.job["job_id"] == str(execution.id)
    assert (stats.success_count, stats.failure_count) == (0, 1)
    assert context is None  # context is stored on success only


async def test_transient_failure_then_success(
    handler: JobHandler, sessions: async_sessionmaker[AsyncSession], api: MockApi
) -> None:
    api.route("GET", "/items", sequence(404, json({"ok": True})))
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    await handler(_delivery(execution))
    await handler(_delivery(execution, attempt=2))
    done = await get_execution(sessions, pair.tenant_id, execution.id)
    assert done.status == "success"
    assert [a.outcome for a in done.attempts] == ["failed", "success"]


async def test_a_stale_delivery_does_not_run(
    handler: JobHandler, sessions: async_sessionmaker[AsyncSession], api: MockApi
) -> None:
    api.route("GET", "/items", sequence(404, json({})))
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    await handler(_delivery(execution))  # attempt 1 failed; the execution is at attempt 2
    await handler(_delivery(execution))  # a late duplicate of attempt 1
    state = await get_execution(sessions, pair.tenant_id, execution.id)
    assert state.status == "queued" and len(state.attempts) == 1
    assert len(api.requests("GET", "/items")) == 1


async def test_a_redelivered_job_closes_the_lost_attempt(
    handler: JobHandler, sessions: async_sessionmaker[AsyncSession], api: MockApi
) -> None:
    api.route("GET", "/items", json({}))
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    async with sessions.begin() as session:  # a worker that started and died
        await executions_repo.start_attempt(session, pair.tenant_id, execution.id, worker="dead")
    await handler(_delivery(execution))
    done = await get_execution(sessions, pair.tenant_id, execution.id)
    assert done.status == "success"
    assert [(a.worker, a.outcome) for a in done.attempts] == [
        ("dead", "worker_lost"),
        ("worker-a", "success"),
    ]


async def test_cancel_stops_a_running_execution(
    handler: JobHandler,
    sessions: async_sessionmaker[AsyncSession],
    api: MockApi,
    redis: Redis,
    cancels: CancelWatcher,
) -> None:
    api.route("GET", "/items", json({}), latency=30)
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    watcher = asyncio.create_task(cancels.run())
    try:
        run = asyncio.create_task(handler(_delivery(execution)))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await publish_cancel(redis, NAMES, pair.tenant_id, str(execution.id))
        await asyncio.wait_for(run, 5)
        assert time.monotonic() - started < 3
    finally:
        watcher.cancel()
    done = await get_execution(sessions, pair.tenant_id, execution.id)
    assert done.status == "cancelled"
    assert done.attempts[0].outcome == "cancelled"


async def test_a_deleted_plan_goes_to_the_dlq(
    handler: JobHandler, sessions: async_sessionmaker[AsyncSession], api: MockApi
) -> None:
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    async with sessions.begin() as session:
        await plans_repo.delete(session, pair.tenant_id, pair.plan.key)
    await handler(_delivery(execution))
    done = await get_execution(sessions, pair.tenant_id, execution.id)
    assert done.status == "failed"
    async with sessions.begin() as session:
        (entry,) = (await dlq_repo.list_page(session, pair.tenant_id)).items
    assert entry.reason == "invalid_definition"


async def test_unknown_execution_is_acknowledged_without_running(handler: JobHandler, api: MockApi) -> None:
    envelope = Envelope(job_id=str(uuid.uuid4()), tenant_id="tenant-1", plan_key="items")
    await handler(Delivery("1-0", envelope))
    assert api.requests() == []
