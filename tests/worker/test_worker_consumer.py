"""StreamConsumer against a real Redis: ack last, bounded concurrency, reclaim, heartbeat, drain."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from engine.queue import Envelope, QueueNames, push_job
from worker.consumer import Delivery, Handler, StreamConsumer

NAMES = QueueNames(stream="test:jobs", group="test-workers")


async def _enqueue(redis: Redis, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        envelope = Envelope(job_id=str(uuid.uuid4()), tenant_id="t1", plan_key="p")
        await push_job(redis, NAMES, envelope)
        ids.append(envelope.job_id)
    return ids


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _consumer(redis: Redis, handler: Handler, name: str = "c1", **options: float) -> StreamConsumer:
    settings = {"concurrency": 4, "visibility_timeout_s": 30.0} | options
    return StreamConsumer(
        redis,
        NAMES,
        handler,
        consumer=name,
        concurrency=int(settings["concurrency"]),
        visibility_timeout_s=settings["visibility_timeout_s"],
        block_ms=100,
    )


async def _pending(redis: Redis) -> int:
    summary = await redis.xpending(NAMES.stream, NAMES.group)
    return int(summary["pending"])


async def test_processes_and_acks_every_job(redis: Redis) -> None:
    ids = await _enqueue(redis, 20)
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.envelope.job_id)

    consumer = _consumer(redis, handle)
    task = asyncio.create_task(consumer.run())
    await _eventually(lambda: _done(seen, 20))
    await consumer.drain(task, 5)
    assert sorted(seen) == sorted(ids)
    assert await _pending(redis) == 0
    assert await redis.xlen(NAMES.stream) == 0  # acked entries are deleted too


async def _done(seen: list[str], count: int) -> bool:
    return len(seen) >= count


async def test_concurrency_is_bounded(redis: Redis) -> None:
    await _enqueue(redis, 8)
    running = peak = finished = 0

    async def handle(delivery: Delivery) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1
        finished += 1

    consumer = _consumer(redis, handle, concurrency=3)
    task = asyncio.create_task(consumer.run())

    async def all_done() -> bool:
        return finished == 8

    await _eventually(all_done)
    await consumer.drain(task, 5)
    assert peak == 3


async def test_failed_handler_leaves_entry_pending_until_reclaimed(redis: Redis) -> None:
    (job_id,) = await _enqueue(redis, 1)
    attempts: list[tuple[str, bool]] = []

    async def flaky(delivery: Delivery) -> None:
        attempts.append((delivery.envelope.job_id, delivery.reclaimed))
        if len(attempts) == 1:
            raise RuntimeError("boom")

    consumer = _consumer(redis, flaky, visibility_timeout_s=0.5)
    task = asyncio.create_task(consumer.run())

    async def twice() -> bool:
        return len(attempts) == 2 and await _pending(redis) == 0

    await _eventually(twice)
    await consumer.drain(task, 5)
    assert attempts == [(job_id, False), (job_id, True)]


async def test_long_job_on_a_live_worker_is_never_stolen(redis: Redis) -> None:
    await _enqueue(redis, 1)
    runs: list[str] = []

    async def slow(delivery: Delivery) -> None:
        runs.append("slow")
        await asyncio.sleep(2.5)

    async def thief(delivery: Delivery) -> None:
        runs.append("thief")

    owner = _consumer(redis, slow, "owner", visibility_timeout_s=0.6)
    owner_task = asyncio.create_task(owner.run())

    async def started() -> bool:
        return runs == ["slow"]

    await _eventually(started)
    other = _consumer(redis, thief, "other", visibility_timeout_s=0.6)
    other_task = asyncio.create_task(other.run())
    await asyncio.sleep(1.5)
    for _ in range(5):  # claim as hard as possible: nothing may move while the owner is alive
        assert await other.claim_stale() == 0
        await asyncio.sleep(0.1)

    async def owner_done() -> bool:
        return await _pending(redis) == 0 and owner.in_flight == 0

    await _eventually(owner_done)
    await other.drain(other_task, 5)
    await owner.drain(owner_task, 5)
    assert runs == ["slow"]


async def test_a_dead_consumers_entry_is_claimed_after_visibility_timeout(redis: Redis) -> None:
    (job_id,) = await _enqueue(redis, 1)
    # A consumer that read the entry and died: it is in its pending list, never acked.
    await redis.xgroup_create(NAMES.stream, NAMES.group, id="0", mkstream=True)
    await redis.xreadgroup(NAMES.group, "dead", {NAMES.stream: ">"}, count=1)
    seen: list[Delivery] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery)

    consumer = _consumer(redis, handle, "alive", visibility_timeout_s=0.5)
    started = time.monotonic()
    task = asyncio.create_task(consumer.run())

    async def claimed() -> bool:
        return bool(seen) and await _pending(redis) == 0

    await _eventually(claimed)
    await consumer.drain(task, 5)
    assert time.monotonic() - started >= 0.45
    assert seen[0].envelope.job_id == job_id and seen[0].reclaimed


async def test_drain_waits_for_running_jobs_within_grace(redis: Redis) -> None:
    await _enqueue(redis, 2)
    finished: list[str] = []

    async def handle(delivery: Delivery) -> None:
        await asyncio.sleep(0.5)
        finished.append(delivery.envelope.job_id)

    consumer = _consumer(redis, handle)
    task = asyncio.create_task(consumer.run())

    async def both_running() -> bool:
        return consumer.in_flight == 2

    await _eventually(both_running)
    await consumer.drain(task, 5)
    assert len(finished) == 2
    assert await _pending(redis) == 0


async def test_drain_leaves_unfinished_jobs_pending(redis: Redis) -> None:
    await _enqueue(redis, 3)
    cancelled = 0

    async def stuck(delivery: Delivery) -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    consumer = _consumer(redis, stuck)
    task = asyncio.create_task(consumer.run())

    async def all_running() -> bool:
        return consumer.in_flight == 3

    await _eventually(all_running)
    started = time.monotonic()
    await consumer.drain(task, 0.3)
    assert time.monotonic() - started < 2
    assert cancelled == 3
    assert await _pending(redis) == 3  # left for other workers


async def test_stopped_consumer_takes_no_new_jobs(redis: Redis) -> None:
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.envelope.job_id)

    consumer = _consumer(redis, handle)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.2)
    await consumer.drain(task, 5)
    await _enqueue(redis, 2)
    await asyncio.sleep(0.3)
    assert seen == []


async def test_group_is_recreated_when_the_stream_vanishes(redis: Redis) -> None:
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.envelope.job_id)

    consumer = _consumer(redis, handle)
    task = asyncio.create_task(consumer.run())
    await _enqueue(redis, 1)

    async def one() -> bool:
        return len(seen) == 1

    await _eventually(one)
    await redis.delete(NAMES.stream)  # e.g. a Redis restarted without its data
    await asyncio.sleep(0.3)
    await _enqueue(redis, 1)

    async def two() -> bool:
        return len(seen) == 2

    await _eventually(two)
    await consumer.drain(task, 5)
