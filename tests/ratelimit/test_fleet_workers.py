"""Fleet-wide rate limits and auth through REAL worker processes (``python -m worker``).

Jobs are queued the way TriggerPlan does (an execution row, then its job on the stream) and three
workers pick them up; the mock API counts what reaches it. Real Redis, PostgreSQL and Kafka.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))

from fault_support import Processes, stack_env, trigger  # type: ignore[import-not-found]
from orchid_jobs_support import (  # type: ignore[import-not-found]
    Pair,
    eventually,
    get_execution,
    migrated_database,
    secret_box,
    truncate_all,
)

from devstack.servers import KafkaBroker, Postgres
from devstack.servers import Redis as RedisServer
from mockapi import MockApi, json, max_in_any_window, rate_limited, sequence
from mockapi.kafka_reader import KafkaReader
from mockapi.model import MockResponse, RecordedRequest
from store import (
    auth_flows_repo,
    configs_repo,
    executions_repo,
    integrations_repo,
    plans_repo,
    rate_limits_repo,
)
from store.records import AuthFlowInput, ConfigInput, IntegrationInput, PlanInput
from store.tables import Execution
from tests.ratelimit.fleet import fanout_plan

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]

WORKERS = ("w1", "w2", "w3")
CLIENT_SECRET = "orchid-secret"


@pytest.fixture(scope="module")
def fleet_dsn(postgres_server: Postgres) -> str:
    dsn: str = migrated_database(postgres_server.dsn, "orchid_fleet_test")
    return dsn


@pytest.fixture
async def sessions(fleet_dsn: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(fleet_dsn, poolclass=NullPool)
    made = async_sessionmaker(engine, expire_on_commit=False)
    await truncate_all(made)
    yield made
    await engine.dispose()


@pytest.fixture
def alerts_topic() -> str:
    return f"rate-limit-alerts-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def processes(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: Postgres,
    redis_server: RedisServer,
    kafka_broker: KafkaBroker,
    fleet_dsn: str,
    alerts_topic: str,
) -> Iterator[Processes]:
    logs = tmp_path_factory.mktemp("fleet-workers")
    env = stack_env(
        postgres_server, redis_server, kafka_broker, fleet_dsn,
        RATE_LIMIT_MAX_WAIT="120s", MAX_EXECUTION_TIME="150s", WORKER_VISIBILITY_TIMEOUT="30s",
        KAFKA_RATE_LIMIT_ALERTS_TOPIC=alerts_topic,
    )  # fmt: skip
    procs = Processes(logs, env)
    yield procs
    procs.stop_all()
    if os.environ.get("ORCHID_SHOW_PROCESS_LOGS"):
        for log in sorted(logs.glob("*.log")):
            print(f"===== {log.name}\n{log.read_text(errors='replace')[-4000:]}")


async def start_workers(processes: Processes, count: int = 3, **overrides: str) -> None:
    names = WORKERS[:count]
    for name in names:
        processes.start("worker", name, **overrides)

    async def ready() -> bool:
        return all(" consuming " in processes.log_of(name) for name in names)

    await eventually(ready, 30, "the workers consuming")


async def seed(
    sessions: async_sessionmaker[AsyncSession],
    *,
    base_url: str,
    plan: dict[str, Any],
    tenant_id: str = "tenant-1",
    flow: bool = False,
) -> tuple[Pair, uuid.UUID | None]:
    async with sessions.begin() as session:
        integration = await integrations_repo.find_by_name(session, tenant_id, "crm")
        if integration is None:
            integration = await integrations_repo.create(session, tenant_id, IntegrationInput(name="crm"))
        flow_id = None
        if flow:
            record = await auth_flows_repo.create(
                session,
                tenant_id,
                AuthFlowInput(
                    integration_id=integration.id,
                    name=f"flow-{uuid.uuid4().hex[:6]}",
                    type="oauth2_client_credentials",
                    definition={
                        "token_url": "{config.base_url}/oauth/token",
                        "client_id": "orchid-client",
                        "client_secret": CLIENT_SECRET,
                    },
                ),
                secrets=secret_box(),
            )
            flow_id = record.id
        config = await configs_repo.create(
            session,
            tenant_id,
            ConfigInput(
                integration_id=integration.id, name=f"cfg-{uuid.uuid4().hex[:8]}",
                values={"base_url": base_url}, enabled=True,
            ),
            secrets=secret_box(),
        )  # fmt: skip
        record_plan = await plans_repo.create(
            session,
            tenant_id,
            PlanInput(
                key=plan["key"], definition=plan, integration_name="crm", enabled=False, auth_flow_id=flow_id
            ),
        )
    return Pair(tenant_id, record_plan, config), flow_id


async def wait_final(
    sessions: async_sessionmaker[AsyncSession], pair: Pair, ids: list[uuid.UUID], timeout_s: float
) -> list[str]:
    async def done() -> bool:
        states = [await get_execution(sessions, pair.tenant_id, i) for i in ids]
        return all(s.status in {"success", "failed", "aborted", "cancelled"} for s in states)

    await eventually(done, timeout_s, "every execution finished")
    return [(await get_execution(sessions, pair.tenant_id, i)).status for i in ids]


def _ids(count: int) -> Any:
    return json({"ids": list(range(count))})


@pytest.mark.slow
async def test_three_workers_fanning_out_share_one_budget(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """3 workers x a 50-wide fan-out, 100 requests per 10 s: never more than 100 in any 10 s
    window at the API, and at least 90% of the budget used."""
    async with MockApi() as api:
        api.route("GET", "/ids", _ids(199))
        limited = rate_limited(100, 10.0, json({"ok": True}), mode="sliding")
        api.route("GET", "/items/{id}", limited)
        plan = fanout_plan("fleet", rate_limits=[{"requests": 100, "window_secs": 10, "scope": "per_config"}])
        pair, _ = await seed(sessions, base_url=api.url, plan=plan)
        await start_workers(processes)
        executions = [await trigger(sessions, redis, pair) for _ in range(3)]
        statuses = await wait_final(sessions, pair, [e.id for e in executions], 120)
        stamps = sorted(r.wall for r in api.requests())
    assert statuses == ["success"] * 3
    assert len(stamps) == 600  # 3 x (1 + 199)
    assert max_in_any_window(stamps, 10.0) <= 100
    assert limited.rejected == 0
    utilization = (len(stamps) - 100) / (stamps[-1] - stamps[0]) * 10.0 / 100
    print(
        f"fleet of workers: {len(stamps)} requests in {stamps[-1] - stamps[0]:.1f}s, util {utilization:.3f}"
    )
    assert 0.9 <= utilization <= 1.0, utilization
    workers = {
        a.worker.split("-")[0]
        for e in executions
        for a in (await get_execution(sessions, pair.tenant_id, e.id)).attempts
    }
    assert len(workers) >= 2, workers  # the budget really was shared across processes
    waited = [
        (await get_execution(sessions, pair.tenant_id, e.id)).stats["rate_limited_seconds"]
        for e in executions
    ]
    assert sum(waited) > 0


async def test_retry_after_pauses_every_worker_then_work_resumes(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    async with MockApi() as api:
        api.route("GET", "/ids", _ids(40))
        responses = [json({"ok": True})] * 10 + [
            json({"error": "slow down"}, status=429, headers={"Retry-After": "2"})
        ]
        api.route("GET", "/items/{id}", sequence(*responses, json({"ok": True})), latency=0.02)
        pair, _ = await seed(sessions, base_url=api.url, plan=fanout_plan("pause", concurrency=5))
        await start_workers(processes)
        executions = [await trigger(sessions, redis, pair) for _ in range(3)]
        statuses = await wait_final(sessions, pair, [e.id for e in executions], 60)
        items = [r for r in api.requests("GET") if r.path.startswith("/items/")]
    assert statuses == ["success"] * 3
    assert len(items) == 3 * 40 + 1  # the 429'd request was sent again
    stamps = sorted(r.wall for r in items)
    longest, _at = max((b - a, a) for a, b in pairwise(stamps))
    assert 1.7 <= longest <= 3.0, longest  # one ~2 s pause, seen by every worker
    throttled = stamps[10]
    during = [t for t in stamps if throttled + 0.15 < t < throttled + 1.8]
    assert during == [], during


async def test_execution_shows_rate_limited_with_resume_at_while_waiting(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis, kafka_broker: KafkaBroker
) -> None:
    async with MockApi() as api:
        api.route("GET", "/ids", _ids(6))
        api.route("GET", "/items/{id}", json({"ok": True}))
        plan = fanout_plan(
            "waits", concurrency=6, rate_limits=[{"requests": 3, "window_secs": 3, "scope": "per_config"}]
        )
        pair, _ = await seed(sessions, base_url=api.url, plan=plan)
        await start_workers(processes, 1)
        execution = await trigger(sessions, redis, pair)
        seen: list[tuple[str, Any]] = []

        async def waiting() -> bool:
            state = await get_execution(sessions, pair.tenant_id, execution.id)
            seen.append((state.status, state.resume_at))
            return state.status == "rate_limited" and state.resume_at is not None

        await eventually(waiting, 20, "the execution shown as rate limited")
        _status, resume_at = seen[-1]
        assert resume_at is not None and 0 < resume_at.timestamp() - time.time() < 5
        statuses = await wait_final(sessions, pair, [execution.id], 30)
    assert statuses == ["success"]
    done = await get_execution(sessions, pair.tenant_id, execution.id)
    assert done.stats["rate_limited_seconds"] > 1
    async with KafkaReader(kafka_broker.bootstrap, ["execution-events"]) as reader:
        events = await reader.until(
            lambda ms: any(
                m.value.get("execution_id") == str(execution.id)
                and m.value.get("type") == "execution.completed"
                for m in ms
            ),
            timeout_s=15,
        )
    mine = [m.value for m in events if m.value.get("execution_id") == str(execution.id)]
    waits = [e for e in mine if e["type"] == "execution.rate_limited"]
    assert waits and waits[0]["resume_at"] and waits[0]["status"] == "rate_limited", mine


async def test_token_expiring_mid_run_is_refreshed_exactly_once_and_recorded(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    async with MockApi() as api:
        oauth = api.oauth2("/oauth/token", expires_in=3600)
        api.route("GET", "/ids", oauth.protect(json({"ids": list(range(600))})))
        api.route("GET", "/items/{id}", oauth.protect(json({"ok": True})), latency=0.05)
        plan = fanout_plan("auth-fleet", headers={"Authorization": "Bearer {auth.token}"})
        pair, flow_id = await seed(sessions, base_url=api.url, plan=plan, flow=True)
        assert flow_id is not None
        await start_workers(processes)
        executions = [await trigger(sessions, redis, pair) for _ in range(3)]

        async def under_load() -> bool:
            return len(api.requests("GET")) > 300

        await eventually(under_load, 30, "the fan-outs under way")
        oauth.expire_all()
        statuses = await wait_final(sessions, pair, [e.id for e in executions], 60)
    assert statuses == ["success"] * 3
    assert oauth.token_calls == 2  # the first token, then exactly one refresh for the whole fleet
    async with sessions() as session:
        children = list(await session.scalars(select(Execution).where(Execution.kind == "auth")))
        parents = {c.parent_id for c in children if c.parent_id is not None}
        listed = (
            [
                c
                for p in parents
                for c in (await executions_repo.list_children(session, pair.tenant_id, p)).items
            ]
            if parents
            else []
        )
    assert len(children) == 2 and {c.status for c in children} == {"success"}
    assert parents <= {e.id for e in executions}
    assert all(c.auth_flow_id == flow_id and c.finished_at is not None for c in children)
    assert sorted(c.kind for c in listed) == ["auth", "auth"]
    logs = "".join(processes.log_of(name) for name in WORKERS)
    assert CLIENT_SECRET not in logs and "at-" not in logs


async def test_remaining_below_thresholds_alerts_once_each(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis, kafka_broker: KafkaBroker,
    alerts_topic: str,
) -> None:  # fmt: skip
    remaining = iter([50, 15, 5, 80])
    last = {"value": 80}

    def respond(request: RecordedRequest) -> MockResponse:
        value = next(remaining, last["value"])
        headers = {"Content-Type": "application/json", "X-RateLimit-Limit": "100",
                   "X-RateLimit-Remaining": str(value), "X-RateLimit-Reset": "30"}  # fmt: skip
        return MockResponse(200, b'{"items": []}', headers)

    async with MockApi() as api:
        api.route("GET", "/items", respond)
        plan = {
            "key": "alerts",
            "step": {"url": "{config.base_url}/items", "method": "GET", "emit_to_kafka": False},
        }
        pair, _ = await seed(sessions, base_url=api.url, plan=plan)
        await start_workers(processes)
        for _ in range(4):  # one request each, one after another, on whichever worker
            execution = await trigger(sessions, redis, pair)
            assert await wait_final(sessions, pair, [execution.id], 30) == ["success"]
        async with KafkaReader(kafka_broker.bootstrap, [alerts_topic]) as reader:
            await reader.take(3, timeout_s=25)
            messages = await reader.quiet(2.0)
    kinds = [(m.value["type"], m.value["severity"]) for m in messages]
    assert [k for k, _ in kinds] == [
        "rate_limit_alert.opened",
        "rate_limit_alert.escalated",
        "rate_limit_alert.resolved",
    ], kinds
    assert [s for _, s in kinds][:2] == ["WARNING", "CRITICAL"], kinds
    async with sessions() as session:
        alerts = (await rate_limits_repo.list_alerts(session, pair.tenant_id)).items
        latest = (await rate_limits_repo.latest_page(session, pair.tenant_id)).items
    assert len(alerts) == 1 and alerts[0].resolved_at is not None
    assert any(state.remaining == 80 for state in latest)


@pytest.mark.slow
async def test_a_huge_fanout_of_one_tenant_does_not_delay_another(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """Tenant B fans out 10,000 items on 3 workers against an integration-wide budget (50/s);
    tenant A's one-request plan, triggered on the same workers while B's line is full, finishes
    within a few seconds."""
    rule = [{"requests": 50, "window_secs": 1, "scope": "global"}]
    async with MockApi() as api:
        api.route("GET", "/ids", _ids(3334))
        api.route("GET", "/items/{id}", json({"ok": True}))
        api.route("GET", "/a", json({"ids": []}))
        b_pair, _ = await seed(
            sessions, base_url=api.url, plan=fanout_plan("b-fanout", rate_limits=rule), tenant_id="tenant-b"
        )
        a_pair, _ = await seed(
            sessions,
            base_url=api.url,
            plan=fanout_plan("a-single", items_path="/a", rate_limits=rule),
            tenant_id="tenant-a",
        )
        await start_workers(processes, MAX_EXECUTION_TIME="12s", JOB_MAX_ATTEMPTS="1")
        b_runs = [await trigger(sessions, redis, b_pair) for _ in range(3)]

        async def b_busy() -> bool:
            return len([r for r in api.requests("GET") if r.path.startswith("/items/")]) > 150

        await eventually(b_busy, 20, "tenant B's fan-out under way")
        triggered = time.time()
        a_run = await trigger(sessions, redis, a_pair)
        assert await wait_final(sessions, a_pair, [a_run.id], 20) == ["success"]
        a_done = await get_execution(sessions, a_pair.tenant_id, a_run.id)
        assert a_done.finished_at is not None
        latency = a_done.finished_at.timestamp() - triggered
        b_states = [await get_execution(sessions, b_pair.tenant_id, b.id) for b in b_runs]
    print(f"tenant A's plan took {latency:.2f}s while B fanned out 10,000 items")
    assert latency < 3.0, latency
    assert all(s.status in {"running", "rate_limited"} for s in b_states), [s.status for s in b_states]
