"""A stand-in worker process for the fleet tests: runs engine.run.run_plan with the Redis limiter
(and optionally the Redis AuthManager) against the mock API, then prints the outcome as JSON.

    python tests/ratelimit/fleet_driver.py '<json spec>'

spec: redis_url, base_url, plan (document), tenant_id, config_id, execution_id, max_wait_s,
optional auth_flow (definition + type + id), start_at (epoch seconds to start at, so every process
starts together).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from engine.http_caller import build_http_caller
from engine.limiter_redis import RedisRateLimiter
from engine.ports import AuthProvider, ExecutionEvent, ExecutionMeta, JsonValue, ResponseMessage
from engine.run import run_plan
from engine.validate import validate_plan
from settings.model import EgressSettings, ExecutionLimits


class NullSink:
    def __init__(self) -> None:
        self.messages = 0

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        self.messages += 1

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        return None

    async def flush(self) -> None:
        return None


class NoAuth:
    async def values(self, *, refresh: bool = False) -> Mapping[str, JsonValue]:
        return {}


async def run_one(spec: dict[str, Any], redis: Redis, http: Any, limiter: RedisRateLimiter) -> dict[str, Any]:
    limits = ExecutionLimits(
        rate_limit_max_wait_s=float(spec.get("max_wait_s", 60)), max_execution_time_s=300
    )
    plan = validate_plan(spec["plan"])
    meta = ExecutionMeta(spec["tenant_id"], "mock", plan.key, spec["config_id"], spec["execution_id"])
    config = {"base_url": spec["base_url"], **spec.get("config", {})}
    auth: AuthProvider = NoAuth()
    if spec.get("auth_flow"):
        from engine.auth_manager import AuthManager

        flow = spec["auth_flow"]
        auth = AuthManager(
            redis, http=http, tenant_id=meta.tenant_id, config_id=meta.config_id,
            flow_id=flow["id"], flow_type=flow["type"], definition=flow["definition"], config=config,
        )  # fmt: skip
    if spec.get("start_at"):
        await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
    cancel = asyncio.Event()
    if spec.get("stop_after_s"):
        asyncio.get_running_loop().call_later(spec["stop_after_s"], cancel.set)
    started = time.time()
    outcome = await run_plan(
        plan, meta=meta, config=config, auth=auth, context={}, http=http,
        limiter=limiter, sink=NullSink(), limits=limits, cancel=cancel,
    )  # fmt: skip
    return {
        "status": outcome.status,
        "error": outcome.error,
        "requests": outcome.stats.requests,
        "rate_limited_seconds": outcome.stats.rate_limited_seconds,
        "started": started,
        "finished": time.time(),
    }


async def main(spec: dict[str, Any]) -> Any:
    """One plan, or with ``runs`` several plans at once in this process (one worker, several
    executions); the ``runs`` entries inherit the top-level fields."""
    redis = Redis.from_url(spec["redis_url"])
    try:
        async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.1",))) as http:
            limiter = RedisRateLimiter(redis)
            if "runs" not in spec:
                return await run_one(spec, redis, http, limiter)
            runs = [{**spec, **run} for run in spec["runs"]]
            return list(await asyncio.gather(*(run_one(run, redis, http, limiter) for run in runs)))
    finally:
        await redis.aclose()


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(result))
