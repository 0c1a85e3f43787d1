"""Speed: a plan under a generous shared Redis limit runs at >= 0.85 of the same plan unlimited."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import pytest
from redis.asyncio import Redis

from engine.http_caller import build_http_caller
from engine.limiter_redis import RedisRateLimiter
from engine.ports import ExecutionMeta, JsonValue, RateLimiter, RateLimitRule, RateLimitSubject
from engine.run import run_plan
from engine.validate import validate_plan
from mockapi import MockApi, json
from settings.model import EgressSettings, ExecutionLimits
from tests.ratelimit.fleet import fanout_plan
from tests.ratelimit.fleet_driver import NoAuth, NullSink

pytestmark = [pytest.mark.stack, pytest.mark.slow]


class NoLimits:
    async def acquire(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject, *, max_wait_s: float
    ) -> float:
        return 0.0

    async def observe(self, subject: RateLimitSubject, status_code: int, headers: Mapping[str, str]) -> None:
        return None


async def test_generous_limit_costs_less_than_15_percent(redis: Redis) -> None:
    items = 2000
    generous = [{"requests": 1_000_000, "window_secs": 60, "scope": "per_config"}]
    async with MockApi() as api:
        api.route("GET", "/ids", json({"ids": list(range(items))}))
        api.route(
            "GET", "/items/{id}", json({"ok": True}), latency=0.02
        )  # a fast API; the limiter must not be the bottleneck
        limits = ExecutionLimits()
        async with build_http_caller(limits, EgressSettings(allowlist=("127.0.0.1",))) as http:

            async def timed(plan_doc: dict[str, JsonValue], limiter: RateLimiter) -> float:
                plan = validate_plan(plan_doc)
                meta = ExecutionMeta("t-speed", "mock", plan.key, "c-speed", "e-speed")
                started = time.perf_counter()
                outcome = await run_plan(
                    plan, meta=meta, config={"base_url": api.url}, auth=NoAuth(), context={}, http=http,
                    limiter=limiter, sink=NullSink(), limits=limits,
                )  # fmt: skip
                assert outcome.status == "success", outcome.error
                return time.perf_counter() - started

            await timed(fanout_plan("warmup"), NoLimits())
            bare, limited = [], []
            for _ in range(5):
                bare.append(await timed(fanout_plan("bare"), NoLimits()))
                limited.append(
                    await timed(fanout_plan("limited", rate_limits=generous), RedisRateLimiter(redis))
                )
    ratio = min(bare) / min(limited)
    print(f"unlimited {min(bare):.3f}s, Redis-limited {min(limited):.3f}s: speed ratio {ratio:.2f}")
    assert ratio >= 0.85, (bare, limited)
