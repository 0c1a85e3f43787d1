"""DlqService end to end: List (with ``count``), Stats, Get, Retry, Delete, tenant isolation and
the admin-only ``all_tenants`` view.

Only a worker puts entries in the DLQ, and only after its retries (seconds), so entries are
written straight into the stack's Postgres with store.dlq_repo (as the worker would), for real
executions created through TriggerPlan. Everything else goes through Envoy.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from devstack.stack import Stack
from store import dlq_repo
from store.records import ErrorInfo, NewDlqEntry
from tests.e2e.api import Api, Json, list_all, unique
from tests.e2e.conftest import TENANT_A, TENANT_B, Apis

DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

Seed = Callable[[Api, str], Awaitable[Json]]


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    db = create_async_engine(stack.postgres.dsn, pool_size=1)
    yield db
    await db.dispose()


@pytest.fixture
def seed(engine: AsyncEngine) -> Seed:
    """A DLQ entry of ``tenant`` for a fresh execution of a fresh plan of ``api``'s tenant.

    The execution is cancelled at once, so the stack's real worker never runs it into a DLQ
    entry of its own (its config points at a closed port) while a test counts entries."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def make(api: Api, tenant: str) -> Json:
        integration = await api.integration()
        config = await api.config(integration["id"])
        plan = await api.plan(integration["name"])
        [execution_id] = (await api.call("PlanService.TriggerPlan", key=plan["key"])).ok()["execution_ids"]
        await api.call("ExecutionService.CancelExecution", id=execution_id)
        async with sessions.begin() as session:
            entry = await dlq_repo.add(
                session,
                tenant,
                NewDlqEntry(
                    execution_id=UUID(execution_id),
                    plan_key=plan["key"],
                    reason="retries_exhausted",
                    config_id=UUID(config["id"]),
                    last_error=ErrorInfo(code="http_error", message="upstream said 500", http_status=500),
                ),
            )
        return {
            "id": str(entry.id),
            "execution_id": execution_id,
            "plan_key": plan["key"],
            "config_id": config["id"],
        }

    return make


async def test_list_get_stats_of_own_entries(api: Apis, seed: Seed) -> None:
    mine = await seed(api.a, TENANT_A)
    entries = await list_all(api.a, "DlqService.ListDlqEntries", "entries")
    assert mine["id"] in {e["id"] for e in entries}
    assert {e["tenant_id"] for e in entries} == {TENANT_A}

    by_plan = (await api.a.call("DlqService.ListDlqEntries", plan_key=mine["plan_key"])).ok()["entries"]
    assert [e["id"] for e in by_plan] == [mine["id"]]
    [entry] = by_plan
    assert entry["execution_id"] == mine["execution_id"]
    assert entry["config_id"] == mine["config_id"]
    assert entry["reason"] == "DLQ_REASON_RETRIES_EXHAUSTED"
    assert entry["last_error"]["http_status"] == 500
    by_reason = await list_all(api.a, "DlqService.ListDlqEntries", "entries", reason="DLQ_REASON_TIMEOUT")
    assert mine["id"] not in {e["id"] for e in by_reason}

    assert (await api.a.call("DlqService.GetDlqEntry", id=mine["id"])).ok() == entry

    stats = (await api.a.call("DlqService.GetDlqStats")).ok()
    assert int(stats["total"]) >= 1
    assert {"plan_key": mine["plan_key"], "count": "1"} in stats["by_plan"]
    assert "DLQ_REASON_RETRIES_EXHAUSTED" in {r["reason"] for r in stats["by_reason"]}


async def test_count_limits_the_page(api: Apis, seed: Seed) -> None:
    for _ in range(3):
        await seed(api.a, TENANT_A)
    page = (await api.a.call("DlqService.ListDlqEntries", count=2)).ok()
    assert len(page["entries"]) == 2 and page["next_page_token"]
    following = (
        await api.a.call("DlqService.ListDlqEntries", count=2, page_token=page["next_page_token"])
    ).ok()
    assert {e["id"] for e in following["entries"]}.isdisjoint({e["id"] for e in page["entries"]})


async def test_retry_and_delete(api: Apis, seed: Seed) -> None:
    retried = await seed(api.a, TENANT_A)
    reply = (await api.a.call("DlqService.RetryDlqEntry", id=retried["id"])).ok()
    execution = (await api.a.call("ExecutionService.GetExecution", id=reply["execution_id"])).ok()
    assert execution["trigger"] == "EXECUTION_TRIGGER_RETRY"
    assert execution["replay_of"] == retried["execution_id"]
    assert execution["plan_key"] == retried["plan_key"]
    (await api.a.call("DlqService.GetDlqEntry", id=retried["id"])).expect(NOT_FOUND)  # out of the DLQ
    (await api.a.call("DlqService.RetryDlqEntry", id=retried["id"])).expect(NOT_FOUND)

    deleted = await seed(api.a, TENANT_A)
    assert (await api.a.call("DlqService.DeleteDlqEntry", id=deleted["id"])).ok() == {}
    (await api.a.call("DlqService.GetDlqEntry", id=deleted["id"])).expect(NOT_FOUND)
    (await api.a.call("DlqService.DeleteDlqEntry", id=deleted["id"])).expect(NOT_FOUND)


async def test_other_tenant_cannot_touch_entries(api: Apis, seed: Seed) -> None:
    mine = await seed(api.a, TENANT_A)
    for rpc in ("DlqService.GetDlqEntry", "DlqService.RetryDlqEntry", "DlqService.DeleteDlqEntry"):
        result = (await api.b.call(rpc, id=mine["id"])).expect(DENIED)
        assert mine["plan_key"] not in result.text and mine["execution_id"] not in result.text
    theirs = await list_all(api.b, "DlqService.ListDlqEntries", "entries")
    assert mine["id"] not in {e["id"] for e in theirs}
    by_plan = (await api.b.call("DlqService.ListDlqEntries", plan_key=mine["plan_key"])).ok()
    assert by_plan.get("entries", []) == []
    stats = (await api.b.call("DlqService.GetDlqStats")).ok()
    assert mine["plan_key"] not in str(stats)
    assert (await api.a.call("DlqService.GetDlqEntry", id=mine["id"])).ok()["id"] == mine["id"]


async def test_all_tenants_is_for_admins(api: Apis, seed: Seed) -> None:
    mine = await seed(api.a, TENANT_A)
    theirs = await seed(api.b, TENANT_B)
    for caller in (api.a, api.b):
        (await caller.call("DlqService.ListDlqEntries", all_tenants=True)).expect(DENIED)
        (await caller.call("DlqService.GetDlqStats", all_tenants=True)).expect(DENIED)

    everyone = await list_all(api.admin, "DlqService.ListDlqEntries", "entries", all_tenants=True)
    ids = {e["id"]: e["tenant_id"] for e in everyone}
    assert ids[mine["id"]] == TENANT_A and ids[theirs["id"]] == TENANT_B
    own = await list_all(api.admin, "DlqService.ListDlqEntries", "entries")
    assert theirs["id"] not in {e["id"] for e in own}  # without all_tenants, even an admin sees its own

    stats_all = (await api.admin.call("DlqService.GetDlqStats", all_tenants=True)).ok()
    stats_own = (await api.admin.call("DlqService.GetDlqStats")).ok()
    assert int(stats_all["total"]) >= int(stats_own["total"]) + 1
    plans = {p["plan_key"] for p in stats_all["by_plan"]}
    assert {mine["plan_key"], theirs["plan_key"]} <= plans


async def test_random_ids_are_not_found(api: Apis) -> None:
    missing = str(uuid.uuid4())
    for rpc in ("DlqService.GetDlqEntry", "DlqService.RetryDlqEntry", "DlqService.DeleteDlqEntry"):
        (await api.a.call(rpc, id=missing)).expect(NOT_FOUND)
    (await api.a.call("DlqService.GetDlqEntry", id=unique("not-a-uuid"))).expect(
        grpc.StatusCode.INVALID_ARGUMENT
    )
