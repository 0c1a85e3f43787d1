"""Every RPC of every orchid.v1 service answers through Envoy, over REST and over gRPC.

Each test runs twice (the ``api`` fixture): REST on the seed's routes and verbs through Envoy's
transcoder, and native gRPC through the same Envoy listener, with real tenant JWTs.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from devstack.stack import Stack
from tests.e2e.api import list_all, unique
from tests.e2e.conftest import Apis

OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

SCHEMA = {
    "type": "object",
    "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string", "secret": True}},
    "required": ["base_url"],
}


async def test_integration_crud(api: Apis) -> None:
    a = api.a
    created = await a.integration(config_schema=SCHEMA)
    assert created["id"] and created["created_at"] and created["updated_at"]
    assert created["config_schema"] == SCHEMA

    got = (await a.call("IntegrationService.GetIntegration", id=created["id"])).ok()
    assert got == created

    listed = await list_all(a, "IntegrationService.ListIntegrations", "integrations")
    assert created["id"] in {i["id"] for i in listed}

    updated = (
        await a.call(
            "IntegrationService.UpdateIntegration",
            id=created["id"],
            name=created["name"],
            description="changed",
            config_schema=SCHEMA,
        )
    ).ok()
    assert updated["description"] == "changed"
    assert updated["created_at"] == created["created_at"]
    assert (await a.call("IntegrationService.GetIntegration", id=created["id"])).ok()[
        "description"
    ] == "changed"

    # In use: neither deleted nor renamed while a config or plan refers to it.
    config = await a.config(created["id"])
    plan = await a.plan(created["name"])
    in_use = (await a.call("IntegrationService.DeleteIntegration", id=created["id"])).expect(
        FAILED_PRECONDITION
    )
    assert "delete them first" in in_use.message
    rename = {"id": created["id"], "name": unique("renamed")}
    (await a.call("IntegrationService.UpdateIntegration", rename)).expect(FAILED_PRECONDITION)
    (await a.call("PlanService.DeletePlan", key=plan["key"])).ok()
    (await a.call("ConfigService.DeleteConfig", id=config["id"])).ok()

    assert (await a.call("IntegrationService.DeleteIntegration", id=created["id"])).ok() == {}
    (await a.call("IntegrationService.GetIntegration", id=created["id"])).expect(NOT_FOUND)


async def test_config_crud_enable_disable(api: Apis) -> None:
    a = api.a
    integration = await a.integration()
    created = await a.config(integration["id"], values={"base_url": "http://127.0.0.1:9", "page": 3})
    assert created["integration_id"] == integration["id"]
    assert created["values"] == {"base_url": "http://127.0.0.1:9", "page": 3}
    assert created["enabled"] is True

    assert (await a.call("ConfigService.GetConfig", id=created["id"])).ok() == created
    listed = await list_all(a, "ConfigService.ListConfigs", "configs", integration_id=integration["id"])
    assert [c["id"] for c in listed] == [created["id"]]

    updated = (
        await a.call(
            "ConfigService.UpdateConfig",
            id=created["id"],
            name=created["name"],
            values={"base_url": "http://127.0.0.1:10"},
        )
    ).ok()
    assert updated["values"] == {"base_url": "http://127.0.0.1:10"}

    disabled = (await a.call("ConfigService.DisableConfig", id=created["id"])).ok()
    assert disabled.get("enabled", False) is False
    only_enabled = await list_all(
        a, "ConfigService.ListConfigs", "configs", integration_id=integration["id"], enabled=True
    )
    assert only_enabled == []
    enabled = (await a.call("ConfigService.EnableConfig", id=created["id"])).ok()
    assert enabled["enabled"] is True

    assert (await a.call("ConfigService.DeleteConfig", id=created["id"])).ok() == {}
    (await a.call("ConfigService.GetConfig", id=created["id"])).expect(NOT_FOUND)


async def test_auth_flow_crud(api: Apis) -> None:
    a = api.a
    integration = await a.integration()
    created = await a.auth_flow(integration["id"], scopes=["read", "write"], extra_params={"audience": "x"})
    assert created["type"] == "AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS"
    assert created["scopes"] == ["read", "write"]
    assert created["extra_params"] == {"audience": "x"}

    assert (await a.call("AuthFlowService.GetAuthFlow", id=created["id"])).ok() == created
    listed = await list_all(
        a, "AuthFlowService.ListAuthFlows", "auth_flows", integration_id=integration["id"]
    )
    assert [f["id"] for f in listed] == [created["id"]]

    updated = (
        await a.call(
            "AuthFlowService.UpdateAuthFlow",
            id=created["id"],
            name=created["name"],
            type="AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS",
            token_url="http://127.0.0.1:9/v2/token",
            client_id="e2e-client",
        )
    ).ok()
    assert updated["token_url"] == "http://127.0.0.1:9/v2/token"

    assert (await a.call("AuthFlowService.DeleteAuthFlow", id=created["id"])).ok() == {}
    (await a.call("AuthFlowService.GetAuthFlow", id=created["id"])).expect(NOT_FOUND)


async def test_plan_crud_enable_and_trigger(api: Apis) -> None:
    a = api.a
    integration = await a.integration()
    config = await a.config(integration["id"])
    plan = await a.plan(integration["name"], description="first")
    key = plan["key"]
    assert plan["id"] and plan["integration"] == integration["name"]

    assert (await a.call("PlanService.GetPlan", key=key)).ok() == plan
    listed = await list_all(a, "PlanService.ListPlans", "plans", integration_id=integration["id"])
    assert [p["key"] for p in listed] == [key]

    updated = (
        await a.call(
            "PlanService.UpdatePlan",
            key=key,
            integration=integration["name"],
            description="second",
            wait_seconds=60,
            enabled=True,
            step={"url": "{config.base_url}/api/v2/contacts", "method": "GET"},
        )
    ).ok()
    assert updated["description"] == "second" and updated["wait_seconds"] == 60
    assert updated["step"]["url"] == "{config.base_url}/api/v2/contacts"
    assert updated["id"] == plan["id"]

    off = (await a.call("PlanService.SetPlanEnabled", key=key, enabled=False)).ok()
    assert off["enabled"] is False
    disabled = await list_all(
        a, "PlanService.ListPlans", "plans", integration_id=integration["id"], enabled=False
    )
    assert [p["key"] for p in disabled] == [key]
    on = (await a.call("PlanService.SetPlanEnabled", key=key, enabled=True)).ok()
    assert on["enabled"] is True

    idempotency = unique("run")
    triggered = (await a.call("PlanService.TriggerPlan", key=key, idempotency_key=idempotency)).ok()
    assert len(triggered["execution_ids"]) == 1
    assert not triggered.get("deduplicated", False)
    again = (await a.call("PlanService.TriggerPlan", key=key, idempotency_key=idempotency)).ok()
    assert again["execution_ids"] == triggered["execution_ids"] and again["deduplicated"] is True
    explicit = (await a.call("PlanService.TriggerPlan", key=key, config_id=config["id"])).ok()
    assert len(explicit["execution_ids"]) == 1

    assert (await a.call("PlanService.DeletePlan", key=key)).ok() == {}
    (await a.call("PlanService.GetPlan", key=key)).expect(NOT_FOUND)


async def test_executions_list_get_children_cancel(api: Apis, stack: Stack) -> None:
    a = api.a
    integration = await a.integration()
    # The stack's worker runs what is triggered: the demo API's /api/slow keeps it RUNNING for 25 s.
    config = await a.config(integration["id"], values={"base_url": stack.demo_api_url})
    plan = await a.plan(integration["name"], enabled=False, step={"url": "{config.base_url}/api/slow"})
    [execution_id] = (await a.call("PlanService.TriggerPlan", key=plan["key"])).ok()["execution_ids"]

    listed = await list_all(a, "ExecutionService.ListExecutions", "executions", plan_key=plan["key"])
    assert [e["id"] for e in listed] == [execution_id]
    deadline = time.monotonic() + 15
    while (await a.call("ExecutionService.GetExecution", id=execution_id)).ok()["status"] != (
        "EXECUTION_STATUS_RUNNING"
    ):
        assert time.monotonic() < deadline, "the worker did not start the execution within 15 s"
        await asyncio.sleep(0.1)
    running = await list_all(
        a,
        "ExecutionService.ListExecutions",
        "executions",
        plan_key=plan["key"],
        status="EXECUTION_STATUS_RUNNING",
    )
    assert [e["id"] for e in running] == [execution_id]
    queued = await list_all(
        a,
        "ExecutionService.ListExecutions",
        "executions",
        plan_key=plan["key"],
        status="EXECUTION_STATUS_QUEUED",
    )
    assert queued == []
    by_config = await list_all(a, "ExecutionService.ListExecutions", "executions", config_id=config["id"])
    assert [e["id"] for e in by_config] == [execution_id]

    execution = (await a.call("ExecutionService.GetExecution", id=execution_id)).ok()
    assert execution["plan_key"] == plan["key"]
    assert execution["config_id"] == config["id"]
    assert execution["trigger"] == "EXECUTION_TRIGGER_MANUAL"
    assert execution["kind"] == "EXECUTION_KIND_PLAN"

    children = (await a.call("ExecutionService.ListExecutionChildren", id=execution_id)).ok()
    assert children.get("executions", []) == []

    cancelled = (await a.call("ExecutionService.CancelExecution", id=execution_id, reason="e2e")).ok()
    assert cancelled["status"] == "EXECUTION_STATUS_CANCELLED"
    (await a.call("ExecutionService.CancelExecution", id=execution_id)).expect(FAILED_PRECONDITION)


async def test_statistics(api: Apis) -> None:
    a = api.a
    integration = await a.integration()
    config = await a.config(integration["id"])
    plan = await a.plan(integration["name"], enabled=False)  # the scheduler leaves it alone
    listed = (await a.call("StatisticsService.ListStatistics", plan_key=plan["key"])).ok()
    assert listed.get("statistics", []) == []  # it never ran
    missing = await a.call("StatisticsService.GetStatistic", plan_key=plan["key"], config_id=config["id"])
    missing.expect(NOT_FOUND)


async def test_rate_limits(api: Apis) -> None:
    a = api.a
    integration = await a.integration()
    config = await a.config(integration["id"])
    for rpc, items in (
        ("RateLimitService.ListRateLimitStates", "states"),
        ("RateLimitService.ListRateLimitHistory", "states"),
        ("RateLimitService.ListRateLimitAlerts", "alerts"),
    ):
        body = (await a.call(rpc, config_id=config["id"])).ok()
        assert body.get(items, []) == []
        (await a.call(rpc)).ok()
    body = (
        await a.call(
            "RateLimitService.ListRateLimitHistory",
            config_id=config["id"],
            endpoint="/api/contacts",
            since="2024-01-01T00:00:00Z",
            until="2030-01-01T00:00:00Z",
        )
    ).ok()
    assert body.get("states", []) == []
    alerts = await a.call(
        "RateLimitService.ListRateLimitAlerts", open_only=True, severity="RATE_LIMIT_ALERT_SEVERITY_CRITICAL"
    )
    alerts.ok()


async def test_ops_health_and_live(api: Apis) -> None:
    for who in (api.a, api.with_token(None)):  # health needs no token
        health = (await who.call("OpsService.Health")).ok()
        assert health["status"] == "SERVING_STATUS_SERVING"
        assert health["version"]
        assert {c["name"] for c in health["checks"]} >= {"database"}
        assert (await who.call("OpsService.Live")).ok() == {"status": "SERVING_STATUS_SERVING"}
