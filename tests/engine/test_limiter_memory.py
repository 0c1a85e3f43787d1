"""The in-memory rate limiter, in virtual time: exact windows, scopes, priority, back-pressure."""

from __future__ import annotations

import asyncio
import random

import pytest
from engine_fakes import VirtualTime

from engine.errors import RateLimitExceededError
from engine.limiter_memory import MemoryRateLimiter, bucket_key
from engine.ports import RateLimitRule, RateLimitSubject

SUBJECT = RateLimitSubject("t1", "c1", "plan", "GET api.example.com/contacts/{item.id}", "acme")


def _limiter(vt: VirtualTime) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=vt.clock, wall=vt.wall, sleep=vt.sleep)


def _assert_window_holds(times: list[float], requests: int, window: float) -> None:
    times = sorted(times)
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t - start < window]
        assert len(inside) <= requests, f"{len(inside)} requests in the window starting at {start}"


async def test_no_window_ever_holds_more_than_n_requests_under_a_burst() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    rule = RateLimitRule(5, 10.0)
    admitted: list[float] = []

    async def one() -> None:
        await limiter.acquire([rule], SUBJECT, max_wait_s=1000)
        admitted.append(vt.now)

    async def burst() -> None:
        await asyncio.gather(*(one() for _ in range(23)))

    await vt.drive(burst())
    _assert_window_holds(admitted, 5, 10.0)
    # and it is not needlessly slow: slots are used as soon as they free up
    assert sorted(admitted) == [0.0] * 5 + [10.0] * 5 + [20.0] * 5 + [30.0] * 5 + [40.0] * 3


@pytest.mark.parametrize("seed", range(5))
async def test_no_window_ever_holds_more_than_n_requests_with_random_arrivals(seed: int) -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    rule = RateLimitRule(3, 2.5)
    rng = random.Random(seed)
    admitted: list[float] = []

    async def client(delays: list[float]) -> None:
        for delay in delays:
            await vt.sleep(delay)
            await limiter.acquire([rule], SUBJECT, max_wait_s=1000)
            admitted.append(vt.now)

    async def everyone() -> None:
        await asyncio.gather(*(client([rng.uniform(0, 3) for _ in range(8)]) for _ in range(6)))

    await vt.drive(everyone())
    assert len(admitted) == 48
    _assert_window_holds(admitted, 3, 2.5)


async def test_every_rule_is_enforced_at_once() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    rules = [RateLimitRule(10, 60.0), RateLimitRule(2, 1.0, "per_endpoint")]
    admitted: list[float] = []

    async def run() -> None:
        for _ in range(12):
            await limiter.acquire(rules, SUBJECT, max_wait_s=1000)
            admitted.append(vt.now)

    await vt.drive(run())
    _assert_window_holds(admitted, 2, 1.0)
    _assert_window_holds(admitted, 10, 60.0)
    assert admitted[10] == 60.0


async def test_higher_priority_waiter_gets_the_next_slot() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    low, high = RateLimitRule(1, 10.0, priority=0), RateLimitRule(1, 10.0, priority=9)
    order: list[str] = []

    async def ask(name: str, rule: RateLimitRule, delay: float) -> None:
        await vt.sleep(delay)
        await limiter.acquire([rule], SUBJECT, max_wait_s=100)
        order.append(name)

    async def run() -> None:
        await limiter.acquire([low], SUBJECT, max_wait_s=1)  # takes the only slot at t=0
        await asyncio.gather(ask("low-1", low, 1), ask("low-2", low, 2), ask("high", high, 3))

    await vt.drive(run())
    assert order == ["high", "low-1", "low-2"]


async def test_a_wait_longer_than_max_wait_fails_at_once() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    rule = RateLimitRule(1, 30.0)

    async def run() -> None:
        await limiter.acquire([rule], SUBJECT, max_wait_s=5)
        with pytest.raises(RateLimitExceededError, match=r"more than the allowed 5\.0s") as caught:
            await limiter.acquire([rule], SUBJECT, max_wait_s=5)
        assert caught.value.wait_s == pytest.approx(30.0)

    await vt.drive(run())
    assert vt.now == 0.0  # it did not sleep first


async def test_waiting_returns_the_seconds_waited() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    rule = RateLimitRule(1, 4.0)

    async def run() -> float:
        await limiter.acquire([rule], SUBJECT, max_wait_s=10)
        return await limiter.acquire([rule], SUBJECT, max_wait_s=10)

    assert await vt.drive(run()) == pytest.approx(4.0)


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    rule = RateLimitRule(1, 10.0)

    async def run() -> float:
        await limiter.acquire([rule], SUBJECT, max_wait_s=100)
        first = asyncio.ensure_future(
            limiter.acquire([rule.__class__(1, 10.0, priority=5)], SUBJECT, max_wait_s=100)
        )
        await asyncio.sleep(0)
        first.cancel()
        return await limiter.acquire([rule], SUBJECT, max_wait_s=100)

    assert await vt.drive(run()) == pytest.approx(10.0)


def test_scopes_pick_their_bucket_keys() -> None:
    other_endpoint = RateLimitSubject("t1", "c1", "plan", "GET api.example.com/orders", "acme")
    other_config = RateLimitSubject("t1", "c2", "plan", SUBJECT.endpoint, "acme")
    other_tenant = RateLimitSubject("t2", "c9", "plan", SUBJECT.endpoint, "acme")
    per_config, per_endpoint, glob = (
        RateLimitRule(5, 1, scope) for scope in ("per_config", "per_endpoint", "global")
    )
    assert bucket_key(per_config, SUBJECT) == bucket_key(per_config, other_endpoint)
    assert bucket_key(per_config, SUBJECT) != bucket_key(per_config, other_config)
    assert bucket_key(per_endpoint, SUBJECT) != bucket_key(per_endpoint, other_endpoint)
    assert bucket_key(glob, SUBJECT) == bucket_key(glob, other_tenant)
    assert bucket_key(RateLimitRule(5, 1), SUBJECT) != bucket_key(RateLimitRule(6, 1), SUBJECT)


@pytest.mark.parametrize(
    ("headers", "pause"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "7"}, 7.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "EPOCH+12"}, 12.0),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "2"}, 2.0),
        ({"x-ratelimit-remaining": "4", "x-ratelimit-reset": "7"}, 0.0),
        ({"Retry-After": "0"}, 0.0),
    ],
)
async def test_observed_backpressure_pauses_the_endpoint(headers: dict[str, str], pause: float) -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)
    headers = {k: str(int(vt.wall() + 12)) if v == "EPOCH+12" else v for k, v in headers.items()}

    async def run() -> float:
        await limiter.observe(SUBJECT, 429, headers)
        return await limiter.acquire([], SUBJECT, max_wait_s=60)

    assert await vt.drive(run()) == pytest.approx(pause)


async def test_a_pause_longer_than_max_wait_fails() -> None:
    vt = VirtualTime()
    limiter = _limiter(vt)

    async def run() -> None:
        await limiter.observe(SUBJECT, 429, {"retry-after": "120"})
        await limiter.acquire([], SUBJECT, max_wait_s=60)

    with pytest.raises(RateLimitExceededError):
        await vt.drive(run())
