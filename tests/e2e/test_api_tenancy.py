"""Tenant isolation through Envoy, REST and gRPC: tenant B can neither read, list, change, delete
nor trigger tenant A's resources (PERMISSION_DENIED / 403), a missing one is NOT_FOUND / 404, and
no answer to B ever carries A's data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from tests.e2e.api import Api, Json, Result, list_all, unique
from tests.e2e.conftest import Apis

OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

SCHEMA = {
    "type": "object",
    "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string", "secret": True}},
}


@dataclass(frozen=True, slots=True)
class World:
    """Tenant A's resources, and the strings that must never reach tenant B."""

    integration: Json
    config: Json
    auth_flow: Json
    plan: Json
    execution_id: str
    private: tuple[str, ...]


@pytest.fixture
async def world(api: Apis) -> World:
    a = api.a
    marker = uuid.uuid4().hex
    private = (
        f"a-private-description-{marker}",
        f"http://a-private-host-{marker}.example",
        f"a-secret-key-{marker}",
        f"a-client-secret-{marker}",
        f"a-client-id-{marker}",
        f"/a-private-path-{marker}",
    )
    description, host, api_key, client_secret, client_id, path = private
    integration = await a.integration(
        name=unique("a-integration"), description=description, config_schema=SCHEMA
    )
    config = await a.config(integration["id"], values={"base_url": host, "api_key": api_key})
    flow = await a.auth_flow(integration["id"], client_id=client_id, client_secret=client_secret)
    plan = await a.plan(
        integration["name"],
        description=description,
        step={"url": "{config.base_url}" + path, "method": "GET"},
    )
    [execution_id] = (await a.call("PlanService.TriggerPlan", key=plan["key"])).ok()["execution_ids"]
    return World(integration, config, flow, plan, execution_id, (*private, integration["name"]))


def denied(result: Result, world: World) -> None:
    result.expect(DENIED)
    clean(result, world)


def clean(result: Result, world: World) -> None:
    for value in world.private:
        assert value not in result.text, f"{result.rpc} leaked {value!r} to tenant B: {result.text}"


async def empty_or_denied(b: Api, rpc: str, items: str, world: World, **filters: Any) -> None:
    """A list filtered by A's id: PERMISSION_DENIED, or an empty page; never A's rows."""
    result = await b.call(rpc, filters)
    clean(result, world)
    if result.code is not DENIED:
        assert result.ok().get(items, []) == [], result.text


async def test_integrations(api: Apis, world: World) -> None:
    b, mine = api.b, world.integration
    denied(await b.call("IntegrationService.GetIntegration", id=mine["id"]), world)
    denied(
        await b.call(
            "IntegrationService.UpdateIntegration", id=mine["id"], name=unique("b-steal"), description="b"
        ),
        world,
    )
    denied(await b.call("IntegrationService.DeleteIntegration", id=mine["id"]), world)
    listed = await list_all(b, "IntegrationService.ListIntegrations", "integrations")
    assert mine["id"] not in {i["id"] for i in listed}
    # B may use the same name in its own namespace; A's integration is untouched.
    theirs = await b.integration(name=mine["name"])
    assert theirs["id"] != mine["id"]
    assert (await api.a.call("IntegrationService.GetIntegration", id=mine["id"])).ok() == mine


async def test_configs(api: Apis, world: World) -> None:
    b, mine = api.b, world.config
    denied(await b.call("ConfigService.GetConfig", id=mine["id"]), world)
    denied(await b.call("ConfigService.UpdateConfig", id=mine["id"], name=unique("b"), values={}), world)
    denied(await b.call("ConfigService.DisableConfig", id=mine["id"]), world)
    denied(await b.call("ConfigService.EnableConfig", id=mine["id"]), world)
    denied(await b.call("ConfigService.DeleteConfig", id=mine["id"]), world)
    await empty_or_denied(
        b, "ConfigService.ListConfigs", "configs", world, integration_id=world.integration["id"]
    )
    # B cannot attach a config of its own to A's integration.
    denied(
        await b.call(
            "ConfigService.CreateConfig", integration_id=world.integration["id"], name=unique("b"), values={}
        ),
        world,
    )
    assert (await api.a.call("ConfigService.GetConfig", id=mine["id"])).ok() == mine


async def test_auth_flows(api: Apis, world: World) -> None:
    b, mine = api.b, world.auth_flow
    denied(await b.call("AuthFlowService.GetAuthFlow", id=mine["id"]), world)
    update = {
        "id": mine["id"],
        "name": unique("b"),
        "type": "AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS",
        "token_url": "http://127.0.0.1:9/b",
    }
    denied(await b.call("AuthFlowService.UpdateAuthFlow", update), world)
    denied(await b.call("AuthFlowService.DeleteAuthFlow", id=mine["id"]), world)
    await empty_or_denied(
        b, "AuthFlowService.ListAuthFlows", "auth_flows", world, integration_id=world.integration["id"]
    )
    # Nor reference A's auth flow from its own config or plan.
    own = await b.integration()
    denied(
        await b.call(
            "ConfigService.CreateConfig",
            integration_id=own["id"],
            name=unique("b"),
            values={},
            auth_flow_id=mine["id"],
        ),
        world,
    )
    plan = {"key": unique("b-plan"), "auth_flow_id": mine["id"], "step": {"url": "http://127.0.0.1:9/"}}
    denied(await b.call("PlanService.CreatePlan", plan), world)
    assert (await api.a.call("AuthFlowService.GetAuthFlow", id=mine["id"])).ok() == mine


async def test_plans(api: Apis, world: World) -> None:
    b, mine = api.b, world.plan
    key = mine["key"]
    denied(await b.call("PlanService.GetPlan", key=key), world)
    update = {"key": key, "step": {"url": "http://127.0.0.1:9/b", "method": "GET"}}
    denied(await b.call("PlanService.UpdatePlan", update), world)
    denied(await b.call("PlanService.SetPlanEnabled", key=key, enabled=False), world)
    denied(await b.call("PlanService.TriggerPlan", key=key), world)
    denied(await b.call("PlanService.TriggerPlan", key=key, config_id=world.config["id"]), world)
    denied(await b.call("PlanService.DeletePlan", key=key), world)
    listed = await list_all(b, "PlanService.ListPlans", "plans")
    assert key not in {p["key"] for p in listed}
    await empty_or_denied(b, "PlanService.ListPlans", "plans", world, integration_id=world.integration["id"])
    assert (await api.a.call("PlanService.GetPlan", key=key)).ok() == mine


async def test_plan_keys_are_per_tenant(api: Apis, world: World) -> None:
    """B may create a plan with the key A uses: each tenant reads its own."""
    integration = await api.b.integration()
    theirs = await api.b.plan(integration["name"], key=world.plan["key"], description="b's own")
    assert theirs["id"] != world.plan["id"]
    assert (await api.b.call("PlanService.GetPlan", key=world.plan["key"])).ok() == theirs
    assert (await api.a.call("PlanService.GetPlan", key=world.plan["key"])).ok() == world.plan


async def test_executions(api: Apis, world: World) -> None:
    b, execution_id = api.b, world.execution_id
    denied(await b.call("ExecutionService.GetExecution", id=execution_id), world)
    denied(await b.call("ExecutionService.ListExecutionChildren", id=execution_id), world)
    denied(await b.call("ExecutionService.CancelExecution", id=execution_id, reason="b"), world)
    listed = await list_all(b, "ExecutionService.ListExecutions", "executions")
    assert execution_id not in {e["id"] for e in listed}
    by_plan = await list_all(b, "ExecutionService.ListExecutions", "executions", plan_key=world.plan["key"])
    assert by_plan == []
    await empty_or_denied(
        b, "ExecutionService.ListExecutions", "executions", world, config_id=world.config["id"]
    )
    mine = (await api.a.call("ExecutionService.GetExecution", id=execution_id)).ok()
    # B's cancel did nothing (the stack's worker may have started or retried it meanwhile).
    assert mine["status"] != "EXECUTION_STATUS_CANCELLED"


async def test_statistics_and_rate_limits(api: Apis, world: World) -> None:
    b = api.b
    stat = await b.call(
        "StatisticsService.GetStatistic", plan_key=world.plan["key"], config_id=world.config["id"]
    )
    assert stat.code in {DENIED, NOT_FOUND}, stat.text
    clean(stat, world)
    await empty_or_denied(
        b, "StatisticsService.ListStatistics", "statistics", world, plan_key=world.plan["key"]
    )
    for rpc, items in (
        ("RateLimitService.ListRateLimitStates", "states"),
        ("RateLimitService.ListRateLimitHistory", "states"),
        ("RateLimitService.ListRateLimitAlerts", "alerts"),
    ):
        denied(await b.call(rpc, config_id=world.config["id"]), world)
        await empty_or_denied(b, rpc, items, world)


async def test_missing_resources_are_not_found(api: Apis) -> None:
    a = api.a
    missing = str(uuid.uuid4())
    for rpc, request in (
        ("IntegrationService.GetIntegration", {"id": missing}),
        ("IntegrationService.UpdateIntegration", {"id": missing, "name": unique("x")}),
        ("IntegrationService.DeleteIntegration", {"id": missing}),
        ("ConfigService.GetConfig", {"id": missing}),
        ("ConfigService.UpdateConfig", {"id": missing, "name": unique("x")}),
        ("ConfigService.DeleteConfig", {"id": missing}),
        ("ConfigService.EnableConfig", {"id": missing}),
        ("ConfigService.DisableConfig", {"id": missing}),
        ("AuthFlowService.GetAuthFlow", {"id": missing}),
        (
            "AuthFlowService.UpdateAuthFlow",
            {
                "id": missing,
                "name": "x",
                "type": "AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS",
                "token_url": "http://x",
            },
        ),
        ("AuthFlowService.DeleteAuthFlow", {"id": missing}),
        ("PlanService.GetPlan", {"key": unique("missing")}),
        ("PlanService.UpdatePlan", {"key": unique("missing"), "step": {"url": "http://127.0.0.1:9/"}}),
        ("PlanService.DeletePlan", {"key": unique("missing")}),
        ("PlanService.SetPlanEnabled", {"key": unique("missing"), "enabled": True}),
        ("PlanService.TriggerPlan", {"key": unique("missing")}),
        ("ExecutionService.GetExecution", {"id": missing}),
        ("ExecutionService.ListExecutionChildren", {"id": missing}),
        ("ExecutionService.CancelExecution", {"id": missing}),
        ("StatisticsService.GetStatistic", {"plan_key": unique("missing"), "config_id": missing}),
        ("DlqService.GetDlqEntry", {"id": missing}),
        ("DlqService.RetryDlqEntry", {"id": missing}),
        ("DlqService.DeleteDlqEntry", {"id": missing}),
    ):
        (await a.call(rpc, request)).expect(NOT_FOUND)


async def test_tenant_header_from_the_client_is_ignored(api: Apis, world: World) -> None:
    """A's token with "x-orchid-tenant-id: tenant-b" still acts as A; B's token with A's tenant
    header still acts as B. Envoy drops the client's copy before jwt_authn writes its own."""
    b_integration = await api.b.integration()
    as_a = api.with_token(
        api.tokens.a, headers={"x-orchid-tenant-id": "tenant-b", "x-orchid-roles": "orchid:admin"}
    )
    assert (await as_a.call("PlanService.GetPlan", key=world.plan["key"])).ok() == world.plan
    (await as_a.call("IntegrationService.GetIntegration", id=b_integration["id"])).expect(DENIED)
    ids = {i["id"] for i in await list_all(as_a, "IntegrationService.ListIntegrations", "integrations")}
    assert world.integration["id"] in ids and b_integration["id"] not in ids
    created = await as_a.integration()
    assert (await api.a.call("IntegrationService.GetIntegration", id=created["id"])).ok() == created
    # The spoofed roles header did not make A an admin.
    (await as_a.call("DlqService.ListDlqEntries", all_tenants=True)).expect(DENIED)

    as_b = api.with_token(api.tokens.b, headers={"x-orchid-tenant-id": "tenant-a"})
    denied(await as_b.call("PlanService.GetPlan", key=world.plan["key"]), world)
