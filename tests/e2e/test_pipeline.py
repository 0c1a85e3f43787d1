"""The running pipeline, end to end: REST through Envoy → server → Redis Streams → the real worker
(``python -m worker``) → the demo API (``python -m mockapi --scenario demo``) → Kafka, with the
scheduler (``python -m scheduler``, polling every 5 s) running plans by itself.

Every test uses a tenant of its own, and its plans are unscheduled (no ``wait_seconds``) unless
the test is about the schedule, so the session's other tests never see these runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis

from devstack.stack import Stack
from engine.queue import QueueNames
from mockapi.kafka_reader import KafkaMessage, KafkaReader
from mockapi.scenarios import DEMO_API_KEY, SLOW_SECONDS
from tests.e2e.api import Json, unique

T = TypeVar("T")

SUCCESS = "EXECUTION_STATUS_SUCCESS"
ACCOUNTS, PAGE = 12, 4  # the demo API's /api/accounts: 3 pages of 4
CALLS_PER_RUN = ACCOUNTS // PAGE + ACCOUNTS  # the pages, then one usage call per account
SCHEMA = {
    "type": "object",
    "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string", "secret": True}},
}
HEADERS = {"X-Api-Key": "{config.api_key}"}
STEP: Json = {
    "url": "{config.base_url}/api/accounts",
    "method": "GET",
    "headers": HEADERS,
    "params": {"limit": str(PAGE), "offset": "{context.next_offset || '0'}"},
    "while": "response.body.has_more == true",
    "context_updates": {"next_offset": "response.body.next_offset"},
    "sub_steps": [
        {
            "iterate_over": "response.body.accounts[*]",
            "concurrency": 4,
            "url": "{config.base_url}/api/accounts/{item.id}/usage",
            "method": "GET",
            "headers": HEADERS,
        }
    ],
}


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout_s: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last: {last!r})")


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Tenant:
    """One tenant's REST client through Envoy, with its demo integration and config."""

    def __init__(self, http: httpx.AsyncClient, name: str) -> None:
        self.http = http
        self.name = name
        self.integration: Json = {}
        self.config: Json = {}

    async def call(self, method: str, path: str, **kw: Any) -> Json:
        response = await self.http.request(method, path, **kw)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        body: Json = response.json()
        return body

    async def setup(self, demo_url: str) -> None:
        self.integration = await self.call(
            "POST", "/api/v1/integrations", json={"name": unique("demo"), "config_schema": SCHEMA}
        )
        values = {"base_url": demo_url, "api_key": DEMO_API_KEY}
        self.config = await self.call(
            "POST",
            "/api/v1/configs",
            json={"integration_id": self.integration["id"], "name": unique("cfg"), "values": values},
        )
        assert self.config["values"]["api_key"] == "********"  # stored encrypted, never echoed

    async def plan(self, step: Json, **fields: Any) -> Json:
        body = {"key": unique("plan"), "integration": self.integration["name"], "step": step, **fields}
        return await self.call("POST", "/api/v1/plans", json=body)

    async def trigger(self, key: str) -> str:
        [execution_id] = (await self.call("POST", f"/api/v1/plans/{key}/trigger", json={}))["execution_ids"]
        return str(execution_id)

    async def execution(self, execution_id: str) -> Json:
        return await self.call("GET", f"/api/v1/executions/{execution_id}")

    async def executions(self, key: str) -> list[Json]:
        body = await self.call("GET", "/api/v1/executions", params={"plan_key": key, "page_size": 100})
        items: list[Json] = body.get("executions", [])
        return items


@pytest.fixture
async def tenant(stack: Stack) -> AsyncIterator[Tenant]:
    name = unique("pipeline")
    headers = {"authorization": f"Bearer {stack.token(name)}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.ports.envoy}", headers=headers, timeout=20
    ) as http:
        tenant = Tenant(http, name)
        await tenant.setup(stack.demo_api_url)
        yield tenant


async def test_triggered_plan_runs_on_the_worker(stack: Stack, tenant: Tenant) -> None:
    plan = await tenant.plan(STEP)  # no wait_seconds: runs only when triggered
    key = plan["key"]
    execution_id = await tenant.trigger(key)

    seen: list[str] = []

    async def finished() -> Json | None:
        execution = await tenant.execution(execution_id)
        if not seen or seen[-1] != execution["status"]:
            seen.append(execution["status"])
        return execution if execution["status"] in {SUCCESS, "EXECUTION_STATUS_FAILED"} else None

    execution = await eventually(finished, timeout_s=30, what="the triggered execution to finish")
    assert execution["status"] == SUCCESS, execution
    # Whatever the polls caught of queued → running → success, it was in that order.
    order = ["EXECUTION_STATUS_QUEUED", "EXECUTION_STATUS_RUNNING", SUCCESS]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    assert execution["trigger"] == "EXECUTION_TRIGGER_MANUAL"
    assert execution["plan_key"] == key and execution["config_id"] == tenant.config["id"]
    created, started, ended = (ts(execution[k]) for k in ("created_at", "started_at", "finished_at"))
    assert created <= started <= ended
    # TriggerPlan put the job on the stream itself: the scheduler's sweep would take 10 s or more.
    assert (started - created).total_seconds() < 5, execution

    [attempt] = execution["attempts"]
    assert attempt["attempt"] == 1 and attempt["outcome"] == "ATTEMPT_OUTCOME_SUCCESS"
    assert attempt["worker"], attempt
    assert ts(attempt["started_at"]) <= ts(attempt["finished_at"])
    assert int(execution["stats"]["requests"]) == CALLS_PER_RUN, execution["stats"]

    listed = await tenant.executions(key)
    assert [e["id"] for e in listed] == [execution_id]
    assert listed[0]["status"] == SUCCESS

    stats = await tenant.call("GET", "/api/v1/statistics", params={"plan_key": key})
    [stat] = stats["statistics"]
    assert stat["config_id"] == tenant.config["id"]
    assert int(stat["success_count"]) >= 1 and int(stat["api_calls"]) > 0, stat
    assert stat["last_execution_id"] == execution_id
    one = await tenant.call("GET", f"/api/v1/statistics/{key}/{tenant.config['id']}")
    assert one["success_count"] == stat["success_count"]

    def mine(messages: list[KafkaMessage]) -> list[KafkaMessage]:
        return [m for m in messages if m.headers.get("execution_id") == execution_id]

    async with KafkaReader(stack.kafka.bootstrap, ["api-responses"]) as reader:
        await reader.until(lambda messages: len(mine(messages)) >= CALLS_PER_RUN, timeout_s=20)
    messages = mine(reader.messages)
    assert len(messages) == CALLS_PER_RUN
    for message in messages:
        assert message.key == f"{tenant.name}:{execution_id}"
        assert message.headers["tenant_id"] == tenant.name
        assert message.headers["integration"] == tenant.integration["name"]
        assert message.headers["plan_key"] == key
        assert DEMO_API_KEY not in message.raw.decode()  # the secret never reaches Kafka
    urls = sorted(m.value["request_url"] for m in messages)
    assert sum("/usage" in url for url in urls) == ACCOUNTS, urls
    # One trace per execution: from the TriggerPlan RPC through the stream entry to every
    # produce, whose traceparent header continues it.
    trace_ids = {m.headers["traceparent"].split("-")[1] for m in messages}
    assert len(trace_ids) == 1, trace_ids
    assert {m.value["trace_id"] for m in messages} == trace_ids


async def test_scheduled_plan_runs_by_itself(tenant: Tenant) -> None:
    plan = await tenant.plan(STEP, wait_seconds=2, enabled=True)
    key = plan["key"]
    try:

        async def two_scheduled_runs() -> list[Json] | None:
            runs = [e for e in await tenant.executions(key) if e["status"] == SUCCESS]
            return runs if len(runs) >= 2 else None

        # The scheduler polls every 5 s: the first run within one poll, the next 2 s after it.
        runs = await eventually(two_scheduled_runs, timeout_s=30, what="two scheduled runs")
    finally:
        await tenant.call("PATCH", f"/api/v1/plans/{key}/enabled", json={"enabled": False})
    assert {r["trigger"] for r in runs} == {"EXECUTION_TRIGGER_SCHEDULE"}
    newest, previous = runs[0], runs[1]
    gap = (ts(newest["started_at"]) - ts(previous["started_at"])).total_seconds()
    assert gap >= 2 - 0.5, (previous, newest)  # wait_seconds apart, give or take clock rounding
    stat = await tenant.call("GET", f"/api/v1/statistics/{key}/{tenant.config['id']}")
    assert int(stat["success_count"]) >= 2 and int(stat["api_calls"]) >= 2 * CALLS_PER_RUN, stat


async def test_cancel_stops_a_running_execution(stack: Stack, tenant: Tenant) -> None:
    plan = await tenant.plan({"url": "{config.base_url}/api/slow", "method": "GET", "headers": HEADERS})
    execution_id = await tenant.trigger(plan["key"])

    async def running() -> Json | None:
        execution = await tenant.execution(execution_id)
        return execution if execution["status"] == "EXECUTION_STATUS_RUNNING" else None

    await eventually(running, timeout_s=15, what="the slow execution to start")
    names = QueueNames(stream="orchid:jobs", group="orchid-workers")  # the stack's defaults
    redis = Redis.from_url(stack.redis.url)
    try:
        entries = await redis.xrange(names.stream) or []
        job_id = execution_id.encode()
        ids = {entry_id for entry_id, fields in entries if fields and fields.get(b"job_id") == job_id}
        assert ids, "the execution's job is not on the stream"

        async def held() -> bool:
            pending = await redis.xpending_range(names.stream, names.group, min="-", max="+", count=10_000)
            return any(p["message_id"] in ids for p in pending)

        assert await held(), "a worker should hold the job while the demo API is slow"

        asked = time.monotonic()
        cancelled = await tenant.call(
            "POST", f"/api/v1/executions/{execution_id}/cancel", json={"reason": "e2e: too slow"}
        )
        assert cancelled["status"] == "EXECUTION_STATUS_CANCELLED", cancelled

        async def released() -> bool:
            return not await held()

        # The worker notices within about a second, stops waiting for the response and acks the job,
        # long before the demo API would have answered.
        await eventually(released, timeout_s=10, what="the worker to let go of the cancelled job")
        assert time.monotonic() - asked < SLOW_SECONDS - 5
    finally:
        await redis.aclose()

    execution = await tenant.execution(execution_id)
    assert execution["status"] == "EXECUTION_STATUS_CANCELLED"
    assert execution["finished_at"] and execution["error"]["message"] == "e2e: too slow", execution
    [attempt] = execution["attempts"]
    assert attempt["outcome"] == "ATTEMPT_OUTCOME_CANCELLED" and attempt["finished_at"], attempt
    log = (stack.root / "worker.log").read_text(errors="replace")
    assert f"cancel requested for {execution_id}" in log
