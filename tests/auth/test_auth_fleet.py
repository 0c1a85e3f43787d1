"""A token expiring mid-run under 3 worker processes, each fanning out 50 wide: one token call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from devstack.servers import Redis as RedisServer
from engine.auth_manager import AuthManager
from engine.http_caller import build_http_caller
from mockapi import MockApi, json
from settings.model import EgressSettings, ExecutionLimits
from tests.ratelimit.fleet import fanout_plan, run_fleet

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FLOW: dict[str, Any] = {
    "id": "flow-1",
    "type": "oauth2_client_credentials",
    "definition": {
        "token_url": "{config.base_url}/oauth/token",
        "client_id": "orchid-client",
        "client_secret": "orchid-secret",
    },
}


async def test_token_expiring_mid_run_is_refreshed_exactly_once(redis_server: RedisServer) -> None:
    async with MockApi() as api:
        oauth = api.oauth2("/oauth/token", expires_in=3600)
        api.route("GET", "/ids", oauth.protect(json({"ids": list(range(600))})))
        api.route("GET", "/items/{id}", oauth.protect(json({"ok": True})), latency=0.05)
        redis = Redis.from_url(redis_server.url)
        await redis.flushdb()
        async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.1",))) as http:
            warm = AuthManager(
                redis, http=http, tenant_id="t-auth", config_id="c-auth", flow_id=FLOW["id"],
                flow_type=FLOW["type"], definition=FLOW["definition"], config={"base_url": api.url},
            )  # fmt: skip
            await warm.values()  # the token every worker starts with
        await redis.aclose()
        assert oauth.token_calls == 1
        plan = fanout_plan("auth-fleet", headers={"Authorization": "Bearer {auth.token}"})
        spec = {"redis_url": redis_server.url, "base_url": api.url, "plan": plan, "tenant_id": "t-auth",
                "config_id": "c-auth", "auth_flow": FLOW}  # fmt: skip

        async def expire_mid_run() -> None:
            await asyncio.sleep(2.5 + 0.4)
            oauth.expire_all()

        started = time.time()
        results, _ = await asyncio.gather(run_fleet([spec] * 3, start_delay_s=2.5), expire_mid_run())
        items = api.requests("GET")
    assert [r["status"] for r in results] == ["success"] * 3, results
    assert oauth.token_calls == 2  # the warm-up, then exactly one refresh for the whole fleet
    unauthorized_after = [r for r in items if r.wall > started + 2.9 and r.headers.get("authorization")]
    assert len(unauthorized_after) > 50  # the expiry really happened mid-run, under load
    assert sum(r["requests"] for r in results) > 3 * 601  # some requests met the 401 and were re-sent
