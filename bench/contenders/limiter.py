"""The shared (Redis) rate limiter: its overhead on a plan, and how close it holds a real limit.

Both modes run Orchid's engine in-process (engine.run.run_plan, AiohttpCaller, emission off) with
engine.limiter_redis.RedisRateLimiter on the shared stack's Redis (``options["stack"]``):

- ``{"mode": "overhead"}`` (scenario ``seq``): the plan of bench.contenders.orchid_engine with a
  very generous plan-level limit (1,000,000 requests per second, per config), so every request
  goes through the limiter and none waits. Compared with ``orchid_engine_off`` (no limits) of the
  same bench run.
- ``{"mode": "accuracy"}`` (scenario ``limiter_accuracy``): ``pages`` engine processes started at
  once, each fetching one list page of ``per_page`` items and fanning out one detail call per item
  (``concurrency`` at a time), every detail call behind ONE shared limit of LIMITER_RATE requests
  per 1 s window (per_endpoint scope: same tenant, config and endpoint in every process). Each
  process records when each detail call started; the achieved rate is taken over the merged
  timeline as ``(N - R) / (t[N-1] - t[R-1])`` (R = requests per window): the first window's burst
  is excluded, so a limiter that holds exactly R per window scores 1.0.

The accuracy parent starts the children as ``--options-json {"mode": "accuracy_child", ...}``;
they print READY once imported and connected, start on a "go" line on stdin, and print their
timestamps as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.contenders.common import Args, Measurement, measure, parse_args, report
from bench.scenarios import LIMITER_RATE

__all__ = ["GENEROUS_LIMIT", "accuracy_figures", "accuracy_plan"]

NAME = "limiter"
REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 1.0
GENEROUS_LIMIT = {"requests": 1_000_000, "window_secs": 1, "scope": "per_config", "max_wait_secs": 60}
_CHILD_TIMEOUT_S = 600.0


def accuracy_plan(rate: int, window_s: float, concurrency: int) -> dict[str, Any]:
    """One list page (this process' slice of the items), then a fan-out of detail calls behind a
    per_endpoint limit of ``rate`` per ``window_s``."""
    return {
        "key": "bench-limiter-accuracy",
        "integration": "bench",
        "step": {
            "name": "page",
            "url": "{config.base_url}/pages",
            "method": "GET",
            "params": {"offset": "{config.offset}", "limit": "{config.per_page}", "total": "{config.total}"},
            "emit_to_kafka": False,
            "sub_steps": [
                {
                    "name": "details",
                    "iterate_over": "response.body.items[*]",
                    "concurrency": concurrency,
                    "url": "{config.base_url}/items/{item.id}",
                    "method": "GET",
                    "rate_limits": [
                        {
                            "requests": rate,
                            "window_secs": window_s,
                            "scope": "per_endpoint",
                            "max_wait_secs": 120,
                        }
                    ],
                }
            ],
        },
    }


def accuracy_figures(starts: Sequence[float], rate: int, window_s: float) -> dict[str, float]:
    """Achieved vs configured rate from every detail call's start time (any order, epoch s)."""
    t = sorted(starts)
    configured = rate / window_s
    if len(t) <= rate:
        raise ValueError(f"{len(t)} calls: need more than one window's {rate} to measure a rate")
    span = t[-1] - t[rate - 1]
    achieved = (len(t) - rate) / span if span > 0 else float("inf")
    # The most calls that started in any window (a sliding window over the sorted starts).
    most, lo = 0, 0
    for hi, start in enumerate(t):
        while start - t[lo] >= window_s:
            lo += 1
        most = max(most, hi - lo + 1)
    return {
        "calls": len(t),
        "span_s": round(t[-1] - t[0], 3),
        "configured_rate": configured,
        "achieved_rate": round(achieved, 2),
        "achieved_ratio": round(achieved / configured, 4),
        "max_in_any_window": most,
    }


@dataclass
class _Recorder:
    """HttpCaller wrapper: the wall-clock start of every detail call."""

    inner: Any
    starts: list[float]

    async def send(self, request: Any) -> Any:
        if "/items/" in request.url:
            self.starts.append(time.time())
        return await self.inner.send(request)


@dataclass
class _Counting:
    """RateLimiter wrapper: how many admissions went through the limiter, and the time waited."""

    inner: Any
    acquires: int = 0
    waited_s: float = 0.0

    async def acquire(self, rules: Any, subject: Any, *, max_wait_s: float) -> float:
        waited = float(await self.inner.acquire(rules, subject, max_wait_s=max_wait_s))
        self.acquires += 1 if rules else 0
        self.waited_s += waited
        return waited

    async def observe(self, subject: Any, status_code: int, headers: Any) -> None:
        await self.inner.observe(subject, status_code, headers)


async def _redis_commands(redis: Any) -> int:
    """Commands Redis has served so far (INFO commandstats)."""
    stats = await redis.info("commandstats")
    return sum(int(v.get("calls", 0)) for v in stats.values() if isinstance(v, dict))


async def _run_engine(
    args: Args, plan_doc: dict[str, Any], config: dict[str, Any], *, config_id: str,
    m: Measurement | None, recorder_starts: list[float] | None = None, gate: Any = None,
) -> tuple[Any, _Counting]:  # fmt: skip
    """validate + run_plan with the Redis limiter and a dropping sink; times the run into ``m``."""
    from redis.asyncio import Redis

    from bench.contenders.orchid_engine import DroppingSink, StaticAuth
    from engine.http_caller import build_http_caller
    from engine.limiter_redis import RedisRateLimiter
    from engine.ports import ExecutionMeta
    from engine.run import run_plan
    from engine.validate import validate_plan
    from settings.model import EgressSettings, ExecutionLimits

    scenario = args.scenario
    limits = ExecutionLimits(max_loops=max(scenario.pages + 1, 1000))
    plan = validate_plan(plan_doc, limits=limits)
    meta = ExecutionMeta(tenant_id="bench", integration="bench", plan_key=plan.key, config_id=config_id,
                         execution_id=str(uuid.uuid4()))  # fmt: skip
    async with AsyncExitStack() as stack:
        redis = Redis.from_url(args.options["stack"]["redis_url"])
        stack.push_async_callback(redis.aclose)
        await redis.ping()
        limiter = _Counting(RedisRateLimiter(redis))
        http: Any = await stack.enter_async_context(
            build_http_caller(limits, EgressSettings(allowlist=("127.0.0.1",)))
        )
        if recorder_starts is not None:
            http = _Recorder(http, recorder_starts)
        if gate is not None:
            await gate()
        run = run_plan(plan, meta=meta, config=config, auth=StaticAuth(), context={}, http=http,
                       limiter=limiter, sink=DroppingSink(), limits=limits)  # fmt: skip
        if m is None:
            outcome = await run
        else:
            commands = await _redis_commands(redis)
            with measure() as timed:
                outcome = await run
            m.wall_s, m.rss_before_mb = timed.wall_s, timed.rss_before_mb
            # INFO itself counts once: the figure is the limiter's commands during the run.
            m.extra["redis_commands"] = await _redis_commands(redis) - commands - 1
    if outcome.status != "success":
        raise SystemExit(f"orchid engine run {outcome.status}: {outcome.error}")
    return outcome, limiter


async def overhead(args: Args) -> None:
    from bench.contenders.orchid_engine import plan_document

    scenario = args.scenario
    document = plan_document(scenario)
    document["rate_limits"] = [GENEROUS_LIMIT]
    config = {"base_url": args.base_url, "per_page": scenario.per_page, "total": scenario.items,
              "latency_ms": scenario.latency_ms}  # fmt: skip
    m = Measurement()
    outcome, limiter = await _run_engine(
        args, document, config, config_id=f"bench-{uuid.uuid4().hex[:10]}", m=m
    )
    if limiter.acquires < scenario.requests:
        raise SystemExit(f"only {limiter.acquires} of {scenario.requests} requests went through the limiter")
    stats = outcome.stats
    m.pages = scenario.pages
    m.details = stats.requests - scenario.pages
    m.records = stats.records
    m.extra.update(
        mode="overhead", limiter="redis", limit=GENEROUS_LIMIT, requests=stats.requests,
        limiter_acquires=limiter.acquires, limiter_waited_s=round(limiter.waited_s, 6),
        redis_commands_per_request=round(m.extra["redis_commands"] / max(stats.requests, 1), 3),
    )  # fmt: skip
    report(NAME, args, m)


async def accuracy_child(args: Args) -> None:
    scenario = args.scenario
    index = int(args.options["index"])
    rate = int(args.options["rate"])
    config = {
        "base_url": args.base_url, "offset": index * scenario.per_page, "per_page": scenario.per_page,
        "total": scenario.items,
    }  # fmt: skip
    loop = asyncio.get_running_loop()

    async def gate() -> None:
        print("READY", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit("no go")

    starts: list[float] = []
    document = accuracy_plan(rate, WINDOW_S, scenario.concurrency)
    await _run_engine(args, document, config, config_id=args.options["config_id"], m=None,
                      recorder_starts=starts, gate=gate)  # fmt: skip
    print("STARTS " + json.dumps(starts), flush=True)


def accuracy(args: Args) -> None:
    """Start the children, release them together, merge their timelines."""
    scenario = args.scenario
    rate = int(args.options.get("rate", LIMITER_RATE))
    config_id = f"bench-accuracy-{uuid.uuid4().hex[:10]}"  # a fresh bucket for this run
    children = []
    for index in range(scenario.pages):
        options = {
            **args.options,
            "mode": "accuracy_child",
            "index": index,
            "rate": rate,
            "config_id": config_id,
        }
        argv = [sys.executable, "-m", "bench.contenders.limiter", "--base-url", args.base_url,
                "--scenario-json", scenario.to_json(), "--options-json", json.dumps(options)]  # fmt: skip
        children.append(
            subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "READY":
                raise SystemExit(f"accuracy child {child.pid} did not start (exit {child.wait()})")
        with measure() as m:
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            outputs = [child.communicate(timeout=_CHILD_TIMEOUT_S)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    starts: list[float] = []
    for child, out in zip(children, outputs, strict=True):
        line = next((ln for ln in out.splitlines() if ln.startswith("STARTS ")), None)
        if child.returncode != 0 or line is None:
            raise SystemExit(f"accuracy child {child.pid} failed (exit {child.returncode})")
        starts.extend(json.loads(line[len("STARTS ") :]))
    figures = accuracy_figures(starts, rate, WINDOW_S)
    m.pages = scenario.pages
    m.details = len(starts)
    m.records = scenario.items + len(starts)
    m.extra.update(mode="accuracy", processes=scenario.pages, window_s=WINDOW_S, rate_per_window=rate,
                   concurrency=scenario.concurrency, **figures)  # fmt: skip
    report(NAME, args, m)


def main() -> None:
    import uvloop

    args = parse_args(NAME)
    mode = args.options.get("mode")
    if mode == "overhead":
        uvloop.run(overhead(args))
    elif mode == "accuracy":
        accuracy(args)
    elif mode == "accuracy_child":
        uvloop.run(accuracy_child(args))
    else:
        raise SystemExit(f"unknown mode {mode!r}: overhead, accuracy")


if __name__ == "__main__":
    main()
