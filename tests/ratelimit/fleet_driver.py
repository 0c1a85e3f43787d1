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


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    limits = ExecutionLimits(rate_limit_max_wait_s=float(spec.get("max_wait_s", 60)), max_execution_time_s=300)
    redis = Redis.from_url(spec["redis_url"])
    plan = validate_plan(spec["plan"])
    meta = ExecutionMeta(spec["tenant_id"], "mock", plan.key, spec["config_id"], spec["execution_id"])
    config = {"base_url": spec["base_url"], **spec.get("config", {})}
    try:
        async with build_http_caller(limits, EgressSettings(allowlist=("127.0.0.1",))) as http:
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
            started = time.time()
            outcome = await run_plan(
                plan, meta=meta, config=config, auth=auth, context={}, http=http,
                limiter=RedisRateLimiter(redis), sink=NullSink(), limits=limits,
            )  # fmt: skip
    finally:
        await redis.aclose()
    return {
        "status": outcome.status,
        "error": outcome.error,
        "requests": outcome.stats.requests,
        "rate_limited_seconds": outcome.stats.rate_limited_seconds,
        "started": started,
        "finished": time.time(),
    }


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(result))
