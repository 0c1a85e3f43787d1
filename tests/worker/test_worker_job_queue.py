"""server/job_queue.py: the server's side of the queue, read back as the worker reads it."""

from __future__ import annotations

import pytest
from orchid_jobs_support import queue_manual, seed_pair
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import DependencyUnavailableError, InvalidArgumentError
from engine.queue import QueueNames, decode_envelope
from mockapi.server import MockApi
from server.job_queue import RedisJobQueue
from server.ports import execution_job

NAMES = QueueNames(stream="test:jobs", group="test-workers")


async def test_enqueue_and_cancel(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    pair = await seed_pair(sessions, base_url=api.url)
    execution = await queue_manual(sessions, pair)
    queue = RedisJobQueue(redis, NAMES)
    job = execution_job(execution) | {
        "trace_context": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    }
    assert await queue.enqueue(job)
    assert await queue.enqueue(job) == ""  # idempotent
    ((_, entries),) = await redis.xread({NAMES.stream: "0"})
    envelope = decode_envelope(entries[0][1])
    assert (envelope.job_id, envelope.tenant_id, envelope.trigger, envelope.attempt) == (
        str(execution.id),
        pair.tenant_id,
        "manual",
        1,
    )
    assert envelope.traceparent.startswith("00-aaaa")
    await queue.request_cancel(pair.tenant_id, str(execution.id))
    assert await redis.get(NAMES.cancel_key(pair.tenant_id, str(execution.id))) == b"1"


async def test_auth_jobs_are_refused(redis: Redis) -> None:
    with pytest.raises(InvalidArgumentError):
        await RedisJobQueue(redis).enqueue({"type": "auth_execution", "execution_id": "x"})


async def test_unreachable_redis_is_unavailable() -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    job = {"execution_id": "7f1c1d5e-0000-4000-8000-000000000000", "tenant_id": "t", "plan_key": "p"}
    with pytest.raises(DependencyUnavailableError):
        await RedisJobQueue(dead).enqueue(job)
    await dead.aclose()
