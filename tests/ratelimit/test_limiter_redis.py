"""RedisRateLimiter against a real Redis: exact windows, waits, priority, fairness, headers."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from devstack.servers import Redis as RedisServer
from engine.errors import RateLimitExceededError
from engine.limiter_redis import BucketState, RedisRateLimiter, bucket_key, margin_ms
from engine.ports import RateLimitRule, RateLimitSubject
from engine.ratelimit_headers import RateLimitInfo
from mockapi import max_in_any_window

A = RateLimitSubject("tenant-a", "cfg-a", "plan-a", "GET api.test/items/{item.id}", "acme")
B = RateLimitSubject("tenant-b", "cfg-b", "plan-b", "GET api.test/items/{item.id}", "acme")


class Recording:
    def __init__(self) -> None:
        self.waiting_calls: list[float] = []
        self.waited_calls: list[float] = []
        self.admissions: list[list[BucketState]] = []
        self.infos: list[RateLimitInfo] = []

    def waiting(self, subject, resume_at) -> None:
        self.waiting_calls.append(resume_at)

    def waited(self, subject, seconds) -> None:
        self.waited_calls.append(seconds)

    def admitted(self, subject, states) -> None:
        self.admissions.append(list(states))

    def observed(self, subject, status_code, info) -> None:
        self.infos.append(info)


async def test_admits_up_to_the_limit_then_fails_fast_past_max_wait(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    rule = RateLimitRule(3, 30)
    for _ in range(3):
        assert await limiter.acquire([rule], A, max_wait_s=1) == 0.0
    with pytest.raises(RateLimitExceededError) as err:
        await limiter.acquire([rule], A, max_wait_s=1)
    assert err.value.wait_s is not None and err.value.wait_s > 29
    key = bucket_key(rule, A)
    assert await redis.zcard(key + ":q") == 0  # a waiter that gave up leaves the line
    assert key == "ratelimit:per_config:tenant-a:cfg-a:3r30s"


async def test_waits_for_the_window_and_reports_it(redis: Redis) -> None:
    seen = Recording()
    resumes: list[float] = []

    async def on_wait(subject, resume_at) -> None:
        resumes.append(resume_at)

    limiter = RedisRateLimiter(redis, observer=seen, on_wait=on_wait, report_wait_s=0.2)
    rule = RateLimitRule(2, 1)
    await limiter.acquire([rule], A, max_wait_s=5)
    await limiter.acquire([rule], A, max_wait_s=5)
    started = time.monotonic()
    waited = await limiter.acquire([rule], A, max_wait_s=5)
    elapsed = time.monotonic() - started
    assert 0.9 < waited <= elapsed < 1.5
    assert len(resumes) == 1 and abs(resumes[0] - (time.time() - elapsed + 1.0)) < 0.3
    assert seen.waited_calls and seen.admissions[-1][0].remaining == 1


async def test_never_more_than_n_in_any_window_with_many_clients(redis_server: RedisServer) -> None:
    rule = RateLimitRule(20, 1.0)
    clients = [Redis.from_url(redis_server.url) for _ in range(3)]
    await clients[0].flushdb()
    admitted: list[float] = []

    async def hammer(limiter: RedisRateLimiter, until: float) -> None:
        while time.monotonic() < until:
            await limiter.acquire([rule], A, max_wait_s=10)
            admitted.append(time.time())

    until = time.monotonic() + 3.0
    try:
        async with asyncio.TaskGroup() as tasks:
            for client in clients:
                limiter = RedisRateLimiter(client)
                for _ in range(20):
                    tasks.create_task(hammer(limiter, until))
    finally:
        for client in clients:
            await client.aclose()
    assert max_in_any_window(admitted, 1.0) <= 20
    rate = (len(admitted) - 20) / (max(admitted) - min(admitted))
    assert rate >= 0.9 * 20, rate


async def test_rules_are_checked_and_counted_together(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    per_config, per_endpoint = RateLimitRule(5, 30), RateLimitRule(2, 30, scope="per_endpoint")
    other = RateLimitSubject("tenant-a", "cfg-a", "plan-a", "GET api.test/other")
    await limiter.acquire([per_config, per_endpoint], A, max_wait_s=0)
    await limiter.acquire([per_config, per_endpoint], A, max_wait_s=0)
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire([per_config, per_endpoint], A, max_wait_s=0)
    # the refused request counted nowhere: the per-config bucket still has 3 slots
    for _ in range(2):
        await limiter.acquire([per_config, per_endpoint], other, max_wait_s=0)
    await limiter.acquire([per_config], other, max_wait_s=0)
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire([per_config], other, max_wait_s=0)


async def test_higher_priority_goes_first(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    low, high = RateLimitRule(1, 0.5, priority=0), RateLimitRule(1, 0.5, priority=5)
    await limiter.acquire([low], A, max_wait_s=5)
    order: list[str] = []

    async def one(name: str, rule: RateLimitRule, delay: float) -> None:
        await asyncio.sleep(delay)
        await limiter.acquire([rule], A, max_wait_s=5)
        order.append(name)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(one("low-1", low, 0.0))
        tasks.create_task(one("low-2", low, 0.02))
        tasks.create_task(one("high", high, 0.1))
    assert order[0] == "high", order


async def test_one_tenants_fanout_does_not_starve_another_in_a_shared_bucket(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    shared = RateLimitRule(10, 0.5, scope="global")  # both tenants use integration "acme"
    assert bucket_key(shared, A) == bucket_key(shared, B)
    for _ in range(10):
        await limiter.acquire([shared], B, max_wait_s=1)
    done_b: list[float] = []

    async def b_item() -> None:
        await limiter.acquire([shared], B, max_wait_s=30)
        done_b.append(time.monotonic())

    b_tasks = [asyncio.create_task(b_item()) for _ in range(60)]
    await asyncio.sleep(0.1)  # B's 60 requests are in line before A arrives
    started = time.monotonic()
    await limiter.acquire([shared], A, max_wait_s=30)
    a_wait = time.monotonic() - started
    await asyncio.gather(*b_tasks)
    assert a_wait < 1.2, a_wait  # served in the next window or two, not after B's 3 s backlog
    assert sum(1 for t in done_b if t <= started + a_wait) <= 20


async def test_retry_after_pauses_every_worker(redis_server: RedisServer) -> None:
    first, second = Redis.from_url(redis_server.url), Redis.from_url(redis_server.url)
    await first.flushdb()
    try:
        one, two = RedisRateLimiter(first), RedisRateLimiter(second)
        await one.observe(A, 429, {"Retry-After": "2"})
        started = time.monotonic()
        await two.acquire([], A, max_wait_s=5)  # no rules: the pause alone holds it back
        assert 1.8 < time.monotonic() - started < 2.5
        other_host = RateLimitSubject("tenant-a", "cfg-a", "plan-a", "GET other.test/x")
        assert await two.acquire([], other_host, max_wait_s=0) == 0.0
        await two.observe(A, 200, {"Retry-After": "2"})  # not a 429/503: no pause
        assert await two.acquire([], A, max_wait_s=0) == 0.0
    finally:
        await first.aclose()
        await second.aclose()


async def test_header_budget_caps_the_limiter(redis: Redis) -> None:
    seen = Recording()
    limiter = RedisRateLimiter(redis, observer=seen)
    await limiter.observe(
        A, 200, {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "1"}
    )
    assert seen.infos[-1].remaining == 2
    await limiter.acquire([], A, max_wait_s=0)
    await limiter.acquire([], A, max_wait_s=0)
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire([], A, max_wait_s=0)
    # a stale response of the same window cannot loosen the cap
    await limiter.observe(
        A, 200, {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "1"}
    )
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire([], A, max_wait_s=0)
    started = time.monotonic()
    await limiter.acquire([], A, max_wait_s=3)
    assert 0.5 < time.monotonic() - started < 1.6
    # after the reset the API's full quota (10) is assumed, no stampede past it
    for _ in range(9):
        await limiter.acquire([], A, max_wait_s=0)
    with pytest.raises(RateLimitExceededError):
        await limiter.acquire([], A, max_wait_s=0)


async def test_remaining_zero_pauses_until_reset(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    await limiter.observe(A, 200, {"RateLimit": "limit=5, remaining=0, reset=1"})
    started = time.monotonic()
    await limiter.acquire([RateLimitRule(100, 60)], A, max_wait_s=3)
    assert 0.8 < time.monotonic() - started < 1.6


async def test_cancelled_waiter_leaves_the_line(redis: Redis) -> None:
    limiter = RedisRateLimiter(redis)
    rule = RateLimitRule(1, 10)
    await limiter.acquire([rule], A, max_wait_s=0)
    task = asyncio.create_task(limiter.acquire([rule], A, max_wait_s=30))
    await asyncio.sleep(0.1)
    assert await redis.zcard(bucket_key(rule, A) + ":q") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await redis.zcard(bucket_key(rule, A) + ":q") == 0
    assert await redis.hlen(bucket_key(rule, A) + ":qt") == 0


def test_margin_bounds() -> None:
    assert margin_ms(1) == 50
    assert margin_ms(10) == 100
    assert margin_ms(3600) == 500


async def test_leases_while_far_from_full_still_never_exceed_the_window(redis_server: RedisServer) -> None:
    rule = RateLimitRule(300, 1.0)  # room >= 64 at first: workers lease slots in batches
    clients = [Redis.from_url(redis_server.url) for _ in range(3)]
    await clients[0].flushdb()
    admitted: list[float] = []

    async def hammer(limiter: RedisRateLimiter, until: float) -> None:
        while time.monotonic() < until:
            await limiter.acquire([rule], A, max_wait_s=10)
            admitted.append(time.time())

    until = time.monotonic() + 2.5
    try:
        async with asyncio.TaskGroup() as tasks:
            for client in clients:
                limiter = RedisRateLimiter(client)
                for _ in range(30):
                    tasks.create_task(hammer(limiter, until))
    finally:
        for client in clients:
            await client.aclose()
    assert max_in_any_window(admitted, 1.0) <= 300
    assert len(admitted) >= 0.9 * 300 * 2
