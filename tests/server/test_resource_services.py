"""Every RPC of the resource services through a real server and channel, for two tenants."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from grpc_harness import Api  # type: ignore[import-not-found]  # tests/server is on sys.path
from orchid.v1 import (
    auth_flows_pb2,
    configs_pb2,
    dlq_pb2,
    executions_pb2,
    integrations_pb2,
    plans_pb2,
    rate_limits_pb2,
    statistics_pb2,
    steps_pb2,
)

from store import dlq_repo, executions_repo, rate_limits_repo, statistics_repo
from store.records import ErrorInfo, NewDlqEntry, NewExecution, RateLimitObservation, RunTotals

A, B = "tenant-a", "tenant-b"
ADMIN_ROLE = "orchid:admin"
MASK = "********"

# The two example plans of the spec's "Plan Definition Structure", verbatim.
BASIC_PLAN = """{
  "key": "salesforce-contacts",
  "integration": "salesforce",
  "wait_seconds": 3600,
  "enabled": true,
  "step": {
    "url": "{config.base_url}/api/contacts",
    "method": "GET",
    "headers": {
      "Authorization": "Bearer {auth.token}",
      "Content-Type": "application/json"
    },
    "params": {
      "limit": "100",
      "offset": "{context.next_offset || '0'}"
    },
    "while": "response.body.has_more == true",
    "context_updates": {
      "next_offset": "response.body.next_offset"
    }
  }
}"""
FANOUT_PLAN = """{
  "key": "contacts-with-details",
  "step": {
    "url": "{config.base_url}/api/contacts",
    "method": "GET",
    "sub_steps": [
      {
        "iterate_over": "response.body.contacts[*]",
        "concurrency": 50,
        "url": "{config.base_url}/api/contacts/{item.id}/details",
        "method": "GET",
        "emit_to_kafka": true
      }
    ]
  },
  "rate_limits": [
    {
      "requests": 100,
      "window_secs": 60,
      "scope": "per_config"
    }
  ]
}"""
SCHEMA = {
    "type": "object",
    "required": ["base_url"],
    "properties": {
        "base_url": {"type": "string"},
        "api_key": {"type": "string", "minLength": 4, "secret": True},
    },
}


def md(tenant: str, *roles: str) -> tuple[tuple[str, str], ...]:
    out = (("x-orchid-tenant-id", tenant),)
    return out + ((("x-orchid-roles", ",".join(roles)),) if roles else ())


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def error_of(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _plan_request(text: str) -> plans_pb2.CreatePlanRequest:
    return json_format.Parse(text, plans_pb2.CreatePlanRequest())


def _document(plan: plans_pb2.Plan) -> dict[str, Any]:
    printed: dict[str, Any] = json_format.MessageToDict(plan, preserving_proto_field_name=True)
    for name in ("id", "created_at", "updated_at"):
        printed.pop(name)
    return printed


async def _setup_tenant(api: Api, tenant: str) -> dict[str, Any]:
    """An integration, an auth flow, a config with a secret and the seed's basic plan."""
    meta = md(tenant)
    integration = await api.integrations.CreateIntegration(
        integrations_pb2.CreateIntegrationRequest(name="salesforce", config_schema=_struct(SCHEMA)),
        metadata=meta,
    )
    flow = await api.auth_flows.CreateAuthFlow(
        auth_flows_pb2.CreateAuthFlowRequest(
            integration_id=integration.id,
            name="oauth",
            type=auth_flows_pb2.AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS,
            token_url="https://login.example.com/token",
            client_id="client",
            client_secret="client-secret-value",
        ),
        metadata=meta,
    )
    config = await api.configs.CreateConfig(
        configs_pb2.CreateConfigRequest(
            integration_id=integration.id,
            name="production",
            values=_struct({"base_url": "https://api.example.com", "api_key": "api-key-secret-value"}),
            auth_flow_id=flow.id,
        ),
        metadata=meta,
    )
    plan = await api.plans.CreatePlan(_plan_request(BASIC_PLAN), metadata=meta)
    return {"integration": integration, "flow": flow, "config": config, "plan": plan}


async def _seed_runtime_rows(api: Api, tenant: str, config_id: str) -> dict[str, Any]:
    """What workers would have written: a failed execution in the DLQ, statistics, rate limits."""
    config = UUID(config_id)
    async with api.sessions.begin() as session:
        failed, _ = await executions_repo.create(
            session,
            tenant,
            NewExecution(plan_key="salesforce-contacts", trigger="schedule", config_id=config),
        )
        await executions_repo.start_attempt(session, tenant, failed.id, worker="w1")
        await executions_repo.finish_attempt(
            session, tenant, failed.id, 1, "failed", ErrorInfo(code="timeout", message="t")
        )
        await executions_repo.finish(
            session, tenant, failed.id, status="failed", error=ErrorInfo("timeout", "t")
        )
        failed = await executions_repo.get(session, tenant, failed.id)
        entry = await dlq_repo.add(
            session,
            tenant,
            NewDlqEntry(
                execution_id=failed.id,
                plan_key="salesforce-contacts",
                config_id=config,
                reason="timeout",
                last_error=failed.error,
                attempts=failed.attempts,
                job={"execution_id": str(failed.id)},
            ),
        )
        await statistics_repo.record_run(
            session,
            tenant,
            "salesforce-contacts",
            config,
            RunTotals(status="success", api_calls=4, records=9),
        )
        now = datetime.now(UTC)
        await rate_limits_repo.record_state(
            session,
            tenant,
            RateLimitObservation(
                config_id=config, endpoint="GET /api/contacts", observed_at=now, remaining=7, limit=100
            ),
        )
        await rate_limits_repo.open_alert(
            session,
            tenant,
            config_id=config,
            endpoint="GET /api/contacts",
            severity="CRITICAL",
            remaining=7,
            limit=100,
        )
    return {"failed": failed, "dlq": entry}


async def test_tenant_b_cannot_touch_tenant_a(api: Api) -> None:
    a = await _setup_tenant(api, A)
    await api.integrations.CreateIntegration(
        integrations_pb2.CreateIntegrationRequest(name="hubspot"), metadata=md(B)
    )
    trigger = await api.plans.TriggerPlan(
        plans_pb2.TriggerPlanRequest(key="salesforce-contacts"), metadata=md(A)
    )
    runtime = await _seed_runtime_rows(api, A, a["config"].id)
    integration_id, config_id, flow_id = a["integration"].id, a["config"].id, a["flow"].id
    execution_id, dlq_id = trigger.execution_ids[0], str(runtime["dlq"].id)
    b = md(B)
    denied = grpc.StatusCode.PERMISSION_DENIED

    # Integrations
    assert (
        await status_of(
            api.integrations.GetIntegration(
                integrations_pb2.GetIntegrationRequest(id=integration_id), metadata=b
            )
        )
        == denied
    )
    assert (
        await status_of(
            api.integrations.UpdateIntegration(
                integrations_pb2.UpdateIntegrationRequest(id=integration_id, name="x"), metadata=b
            )
        )
        == denied
    )
    assert (
        await status_of(
            api.integrations.DeleteIntegration(
                integrations_pb2.DeleteIntegrationRequest(id=integration_id), metadata=b
            )
        )
        == denied
    )
    listed = await api.integrations.ListIntegrations(integrations_pb2.ListIntegrationsRequest(), metadata=b)
    assert [i.name for i in listed.integrations] == ["hubspot"]
    # Configs
    assert (
        await status_of(
            api.configs.ListConfigs(configs_pb2.ListConfigsRequest(integration_id=integration_id), metadata=b)
        )
        == denied
    )
    assert (
        await status_of(
            api.configs.CreateConfig(
                configs_pb2.CreateConfigRequest(
                    integration_id=integration_id, name="x", values=_struct({"base_url": "u"})
                ),
                metadata=b,
            )
        )
        == denied
    )
    assert (
        await status_of(api.configs.GetConfig(configs_pb2.GetConfigRequest(id=config_id), metadata=b))
        == denied
    )
    assert (
        await status_of(
            api.configs.UpdateConfig(configs_pb2.UpdateConfigRequest(id=config_id, name="x"), metadata=b)
        )
        == denied
    )
    assert (
        await status_of(api.configs.EnableConfig(configs_pb2.EnableConfigRequest(id=config_id), metadata=b))
        == denied
    )
    assert (
        await status_of(api.configs.DisableConfig(configs_pb2.DisableConfigRequest(id=config_id), metadata=b))
        == denied
    )
    assert (
        await status_of(api.configs.DeleteConfig(configs_pb2.DeleteConfigRequest(id=config_id), metadata=b))
        == denied
    )
    # Auth flows
    assert (
        await status_of(
            api.auth_flows.ListAuthFlows(
                auth_flows_pb2.ListAuthFlowsRequest(integration_id=integration_id), metadata=b
            )
        )
        == denied
    )
    assert (
        await status_of(api.auth_flows.GetAuthFlow(auth_flows_pb2.GetAuthFlowRequest(id=flow_id), metadata=b))
        == denied
    )
    assert (
        await status_of(
            api.auth_flows.UpdateAuthFlow(
                auth_flows_pb2.UpdateAuthFlowRequest(
                    id=flow_id,
                    name="x",
                    type=auth_flows_pb2.AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS,
                    token_url="https://t",
                ),
                metadata=b,
            )
        )
        == denied
    )
    assert (
        await status_of(
            api.auth_flows.DeleteAuthFlow(auth_flows_pb2.DeleteAuthFlowRequest(id=flow_id), metadata=b)
        )
        == denied
    )
    # Plans (addressed by key)
    key = "salesforce-contacts"
    assert await status_of(api.plans.GetPlan(plans_pb2.GetPlanRequest(key=key), metadata=b)) == denied
    update = plans_pb2.UpdatePlanRequest.FromString(_plan_request(FANOUT_PLAN).SerializeToString())
    update.key = key
    assert await status_of(api.plans.UpdatePlan(update, metadata=b)) == denied
    assert (
        await status_of(
            api.plans.SetPlanEnabled(plans_pb2.SetPlanEnabledRequest(key=key, enabled=False), metadata=b)
        )
        == denied
    )
    assert await status_of(api.plans.TriggerPlan(plans_pb2.TriggerPlanRequest(key=key), metadata=b)) == denied
    assert await status_of(api.plans.DeletePlan(plans_pb2.DeletePlanRequest(key=key), metadata=b)) == denied
    assert list((await api.plans.ListPlans(plans_pb2.ListPlansRequest(), metadata=b)).plans) == []
    # Executions
    assert (
        await status_of(
            api.executions.GetExecution(executions_pb2.GetExecutionRequest(id=execution_id), metadata=b)
        )
        == denied
    )
    assert (
        await status_of(
            api.executions.ListExecutionChildren(
                executions_pb2.ListExecutionChildrenRequest(id=execution_id), metadata=b
            )
        )
        == denied
    )
    assert (
        await status_of(
            api.executions.CancelExecution(executions_pb2.CancelExecutionRequest(id=execution_id), metadata=b)
        )
        == denied
    )
    assert (
        list(
            (
                await api.executions.ListExecutions(executions_pb2.ListExecutionsRequest(), metadata=b)
            ).executions
        )
        == []
    )
    # Statistics
    assert (
        await status_of(
            api.statistics.GetStatistic(
                statistics_pb2.GetStatisticRequest(plan_key=key, config_id=config_id), metadata=b
            )
        )
        == denied
    )
    assert (
        list(
            (
                await api.statistics.ListStatistics(
                    statistics_pb2.ListStatisticsRequest(plan_key=key), metadata=b
                )
            ).statistics
        )
        == []
    )
    # DLQ
    assert await status_of(api.dlq.GetDlqEntry(dlq_pb2.GetDlqEntryRequest(id=dlq_id), metadata=b)) == denied
    assert (
        await status_of(api.dlq.RetryDlqEntry(dlq_pb2.RetryDlqEntryRequest(id=dlq_id), metadata=b)) == denied
    )
    assert (
        await status_of(api.dlq.DeleteDlqEntry(dlq_pb2.DeleteDlqEntryRequest(id=dlq_id), metadata=b))
        == denied
    )
    assert list((await api.dlq.ListDlqEntries(dlq_pb2.ListDlqEntriesRequest(), metadata=b)).entries) == []
    assert (await api.dlq.GetDlqStats(dlq_pb2.GetDlqStatsRequest(), metadata=b)).total == 0
    assert (
        await status_of(api.dlq.ListDlqEntries(dlq_pb2.ListDlqEntriesRequest(all_tenants=True), metadata=b))
        == denied
    )
    assert (
        await status_of(api.dlq.GetDlqStats(dlq_pb2.GetDlqStatsRequest(all_tenants=True), metadata=b))
        == denied
    )
    # Rate limits
    assert (
        await status_of(
            api.rate_limits.ListRateLimitStates(
                rate_limits_pb2.ListRateLimitStatesRequest(config_id=config_id), metadata=b
            )
        )
        == denied
    )
    assert (
        await status_of(
            api.rate_limits.ListRateLimitHistory(
                rate_limits_pb2.ListRateLimitHistoryRequest(config_id=config_id), metadata=b
            )
        )
        == denied
    )
    assert (
        await status_of(
            api.rate_limits.ListRateLimitAlerts(
                rate_limits_pb2.ListRateLimitAlertsRequest(config_id=config_id), metadata=b
            )
        )
        == denied
    )
    assert (
        list(
            (
                await api.rate_limits.ListRateLimitStates(
                    rate_limits_pb2.ListRateLimitStatesRequest(), metadata=b
                )
            ).states
        )
        == []
    )
    assert (
        list(
            (
                await api.rate_limits.ListRateLimitHistory(
                    rate_limits_pb2.ListRateLimitHistoryRequest(), metadata=b
                )
            ).states
        )
        == []
    )
    assert (
        list(
            (
                await api.rate_limits.ListRateLimitAlerts(
                    rate_limits_pb2.ListRateLimitAlertsRequest(), metadata=b
                )
            ).alerts
        )
        == []
    )

    # Nothing of tenant A changed.
    meta = md(A)
    assert (
        await api.integrations.GetIntegration(
            integrations_pb2.GetIntegrationRequest(id=integration_id), metadata=meta
        )
    ).name == "salesforce"
    assert (
        await api.configs.GetConfig(configs_pb2.GetConfigRequest(id=config_id), metadata=meta)
    ).enabled is True
    assert (await api.plans.GetPlan(plans_pb2.GetPlanRequest(key=key), metadata=meta)).enabled is True
    execution = await api.executions.GetExecution(
        executions_pb2.GetExecutionRequest(id=execution_id), metadata=meta
    )
    assert execution.status == executions_pb2.EXECUTION_STATUS_QUEUED
    assert (await api.dlq.GetDlqEntry(dlq_pb2.GetDlqEntryRequest(id=dlq_id), metadata=meta)).tenant_id == A


async def test_every_rpc_for_the_owner(api: Api) -> None:
    a = await _setup_tenant(api, A)
    meta = md(A)
    integration_id, config_id, flow_id = a["integration"].id, a["config"].id, a["flow"].id

    # Integrations
    listed = await api.integrations.ListIntegrations(
        integrations_pb2.ListIntegrationsRequest(), metadata=meta
    )
    assert [i.id for i in listed.integrations] == [integration_id]
    fetched = await api.integrations.GetIntegration(
        integrations_pb2.GetIntegrationRequest(id=integration_id), metadata=meta
    )
    assert json_format.MessageToDict(fetched.config_schema) == SCHEMA
    renamed = await error_of(
        api.integrations.UpdateIntegration(
            integrations_pb2.UpdateIntegrationRequest(id=integration_id, name="sf"), metadata=meta
        )
    )
    assert renamed.code() == grpc.StatusCode.FAILED_PRECONDITION
    updated = await api.integrations.UpdateIntegration(
        integrations_pb2.UpdateIntegrationRequest(
            id=integration_id, name="salesforce", description="CRM", config_schema=_struct(SCHEMA)
        ),
        metadata=meta,
    )
    assert updated.description == "CRM"
    assert (
        await status_of(
            api.integrations.CreateIntegration(
                integrations_pb2.CreateIntegrationRequest(name="salesforce"), metadata=meta
            )
        )
        == grpc.StatusCode.ALREADY_EXISTS
    )
    assert (
        await status_of(
            api.integrations.DeleteIntegration(
                integrations_pb2.DeleteIntegrationRequest(id=integration_id), metadata=meta
            )
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )

    # Configs
    configs = await api.configs.ListConfigs(
        configs_pb2.ListConfigsRequest(integration_id=integration_id), metadata=meta
    )
    assert [c.values["api_key"] for c in configs.configs] == [MASK]
    disabled = await api.configs.DisableConfig(configs_pb2.DisableConfigRequest(id=config_id), metadata=meta)
    assert disabled.enabled is False
    only_enabled = await api.configs.ListConfigs(
        configs_pb2.ListConfigsRequest(integration_id=integration_id, enabled=True), metadata=meta
    )
    assert list(only_enabled.configs) == []
    assert (
        await api.configs.EnableConfig(configs_pb2.EnableConfigRequest(id=config_id), metadata=meta)
    ).enabled
    got = await api.configs.GetConfig(configs_pb2.GetConfigRequest(id=config_id), metadata=meta)
    put_back = configs_pb2.UpdateConfigRequest.FromString(got.SerializeToString())
    put_back.values["base_url"] = "https://eu.example.com"
    config = await api.configs.UpdateConfig(put_back, metadata=meta)
    assert dict(config.values) == {"base_url": "https://eu.example.com", "api_key": MASK}
    bad = await error_of(
        api.configs.CreateConfig(
            configs_pb2.CreateConfigRequest(
                integration_id=integration_id, name="bad", values=_struct({"api_key": "x"})
            ),
            metadata=meta,
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "values: 'base_url' is a required property" in (bad.details() or "")
    assert "values.api_key" in (bad.details() or "") and "'x'" not in (bad.details() or "")

    # Auth flows
    flows = await api.auth_flows.ListAuthFlows(
        auth_flows_pb2.ListAuthFlowsRequest(integration_id=integration_id), metadata=meta
    )
    assert [f.client_secret for f in flows.auth_flows] == [MASK]
    flow = await api.auth_flows.GetAuthFlow(auth_flows_pb2.GetAuthFlowRequest(id=flow_id), metadata=meta)
    flow_update = auth_flows_pb2.UpdateAuthFlowRequest.FromString(flow.SerializeToString())
    flow_update.scopes.append("contacts.read")
    flow = await api.auth_flows.UpdateAuthFlow(flow_update, metadata=meta)
    assert list(flow.scopes) == ["contacts.read"] and flow.client_secret == MASK

    # Plans
    fanout = await api.plans.CreatePlan(_plan_request(FANOUT_PLAN), metadata=meta)
    plans = await api.plans.ListPlans(plans_pb2.ListPlansRequest(page_size=1), metadata=meta)
    assert [p.key for p in plans.plans] == ["contacts-with-details"] and plans.next_page_token
    rest = await api.plans.ListPlans(
        plans_pb2.ListPlansRequest(page_size=1, page_token=plans.next_page_token), metadata=meta
    )
    assert [p.key for p in rest.plans] == ["salesforce-contacts"] and not rest.next_page_token
    by_integration = await api.plans.ListPlans(
        plans_pb2.ListPlansRequest(integration_id=integration_id), metadata=meta
    )
    assert [p.key for p in by_integration.plans] == ["salesforce-contacts"]
    assert (
        await api.plans.SetPlanEnabled(
            plans_pb2.SetPlanEnabledRequest(key=fanout.key, enabled=True), metadata=meta
        )
    ).enabled
    enabled = await api.plans.ListPlans(plans_pb2.ListPlansRequest(enabled=False), metadata=meta)
    assert list(enabled.plans) == []
    plan_update = plans_pb2.UpdatePlanRequest.FromString(fanout.SerializeToString())
    plan_update.description = "details"
    plan_update.ClearField("enabled")  # absent: unchanged
    changed = await api.plans.UpdatePlan(plan_update, metadata=meta)
    assert changed.description == "details" and changed.enabled is True

    # Trigger: idempotent, enqueued after commit
    first = await api.plans.TriggerPlan(
        plans_pb2.TriggerPlanRequest(key="salesforce-contacts", idempotency_key="req-1"), metadata=meta
    )
    again = await api.plans.TriggerPlan(
        plans_pb2.TriggerPlanRequest(key="salesforce-contacts", idempotency_key="req-1"), metadata=meta
    )
    assert len(first.execution_ids) == 1 and not first.deduplicated
    assert list(again.execution_ids) == list(first.execution_ids) and again.deduplicated
    assert [job["execution_id"] for job in api.queue.jobs] == list(first.execution_ids)
    single = await api.plans.TriggerPlan(
        plans_pb2.TriggerPlanRequest(key="salesforce-contacts", config_id=config_id), metadata=meta
    )
    execution_id = single.execution_ids[0]

    # Executions
    listed_runs = await api.executions.ListExecutions(
        executions_pb2.ListExecutionsRequest(
            plan_key="salesforce-contacts", status=executions_pb2.EXECUTION_STATUS_QUEUED
        ),
        metadata=meta,
    )
    assert {e.id for e in listed_runs.executions} == {execution_id, first.execution_ids[0]}
    execution = await api.executions.GetExecution(
        executions_pb2.GetExecutionRequest(id=execution_id), metadata=meta
    )
    assert execution.trigger == executions_pb2.EXECUTION_TRIGGER_MANUAL and execution.config_id == config_id
    children = await api.executions.ListExecutionChildren(
        executions_pb2.ListExecutionChildrenRequest(id=execution_id), metadata=meta
    )
    assert list(children.executions) == []
    cancelled = await api.executions.CancelExecution(
        executions_pb2.CancelExecutionRequest(id=execution_id, reason="no longer needed"), metadata=meta
    )
    assert cancelled.status == executions_pb2.EXECUTION_STATUS_CANCELLED
    assert cancelled.error.message == "no longer needed"
    assert api.queue.cancels == [(A, execution_id)]
    assert (
        await status_of(
            api.executions.CancelExecution(
                executions_pb2.CancelExecutionRequest(id=execution_id), metadata=meta
            )
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )

    # Statistics, DLQ, rate limits (rows written as a worker would)
    runtime = await _seed_runtime_rows(api, A, config_id)
    stat = await api.statistics.GetStatistic(
        statistics_pb2.GetStatisticRequest(plan_key="salesforce-contacts", config_id=config_id), metadata=meta
    )
    assert (stat.success_count, stat.api_calls, stat.last_status) == (
        1,
        4,
        executions_pb2.EXECUTION_STATUS_SUCCESS,
    )
    stats = await api.statistics.ListStatistics(
        statistics_pb2.ListStatisticsRequest(plan_key="salesforce-contacts"), metadata=meta
    )
    assert [s.config_id for s in stats.statistics] == [config_id]

    dlq_id = str(runtime["dlq"].id)
    entries = await api.dlq.ListDlqEntries(
        dlq_pb2.ListDlqEntriesRequest(count=10, reason=dlq_pb2.DLQ_REASON_TIMEOUT), metadata=meta
    )
    assert [e.id for e in entries.entries] == [dlq_id]
    entry = await api.dlq.GetDlqEntry(dlq_pb2.GetDlqEntryRequest(id=dlq_id), metadata=meta)
    assert entry.reason == dlq_pb2.DLQ_REASON_TIMEOUT and [x.outcome for x in entry.attempts] == [
        executions_pb2.ATTEMPT_OUTCOME_FAILED
    ]
    dlq_stats = await api.dlq.GetDlqStats(dlq_pb2.GetDlqStatsRequest(), metadata=meta)
    assert dlq_stats.total == 1 and dlq_stats.by_plan[0].plan_key == "salesforce-contacts"
    admin = await api.dlq.ListDlqEntries(
        dlq_pb2.ListDlqEntriesRequest(all_tenants=True), metadata=md(B, ADMIN_ROLE)
    )
    assert [e.tenant_id for e in admin.entries] == [A]
    assert (
        await api.dlq.GetDlqStats(dlq_pb2.GetDlqStatsRequest(all_tenants=True), metadata=md(B, ADMIN_ROLE))
    ).total == 1
    retried = await api.dlq.RetryDlqEntry(dlq_pb2.RetryDlqEntryRequest(id=dlq_id), metadata=meta)
    replay = await api.executions.GetExecution(
        executions_pb2.GetExecutionRequest(id=retried.execution_id), metadata=meta
    )
    assert replay.trigger == executions_pb2.EXECUTION_TRIGGER_RETRY and replay.replay_of == str(
        runtime["failed"].id
    )
    assert api.queue.jobs[-1]["execution_id"] == retried.execution_id
    assert (
        await status_of(api.dlq.GetDlqEntry(dlq_pb2.GetDlqEntryRequest(id=dlq_id), metadata=meta))
        == grpc.StatusCode.NOT_FOUND
    )
    second = await _seed_runtime_rows(api, A, config_id)
    await api.dlq.DeleteDlqEntry(dlq_pb2.DeleteDlqEntryRequest(id=str(second["dlq"].id)), metadata=meta)
    assert (await api.dlq.GetDlqStats(dlq_pb2.GetDlqStatsRequest(), metadata=meta)).total == 0

    states = await api.rate_limits.ListRateLimitStates(
        rate_limits_pb2.ListRateLimitStatesRequest(config_id=config_id), metadata=meta
    )
    assert [(s.endpoint, s.remaining) for s in states.states] == [("GET /api/contacts", 7)]
    history_request = rate_limits_pb2.ListRateLimitHistoryRequest(endpoint="GET /api/contacts")
    history_request.since.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    history = await api.rate_limits.ListRateLimitHistory(history_request, metadata=meta)
    assert len(history.states) == 2
    alerts = await api.rate_limits.ListRateLimitAlerts(
        rate_limits_pb2.ListRateLimitAlertsRequest(
            open_only=True, severity=rate_limits_pb2.RATE_LIMIT_ALERT_SEVERITY_CRITICAL
        ),
        metadata=meta,
    )
    assert [a.severity for a in alerts.alerts] == [rate_limits_pb2.RATE_LIMIT_ALERT_SEVERITY_CRITICAL]

    # Deletion, in dependency order
    assert (
        await status_of(
            api.auth_flows.DeleteAuthFlow(auth_flows_pb2.DeleteAuthFlowRequest(id=flow_id), metadata=meta)
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    await api.plans.DeletePlan(plans_pb2.DeletePlanRequest(key="salesforce-contacts"), metadata=meta)
    await api.plans.DeletePlan(plans_pb2.DeletePlanRequest(key="contacts-with-details"), metadata=meta)
    await api.configs.DeleteConfig(configs_pb2.DeleteConfigRequest(id=config_id), metadata=meta)
    await api.auth_flows.DeleteAuthFlow(auth_flows_pb2.DeleteAuthFlowRequest(id=flow_id), metadata=meta)
    await api.integrations.DeleteIntegration(
        integrations_pb2.DeleteIntegrationRequest(id=integration_id), metadata=meta
    )
    assert (
        await status_of(
            api.integrations.GetIntegration(
                integrations_pb2.GetIntegrationRequest(id=integration_id), metadata=meta
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )
    # Past executions are kept.
    kept = await api.executions.GetExecution(
        executions_pb2.GetExecutionRequest(id=execution_id), metadata=meta
    )
    assert kept.plan_key == "salesforce-contacts"


@pytest.mark.parametrize("text", [BASIC_PLAN, FANOUT_PLAN], ids=["basic", "fanout"])
async def test_seed_plans_read_back_equal(api: Api, text: str) -> None:
    meta = md(A)
    await api.integrations.CreateIntegration(
        integrations_pb2.CreateIntegrationRequest(name="salesforce"), metadata=meta
    )
    created = await api.plans.CreatePlan(_plan_request(text), metadata=meta)
    fetched = await api.plans.GetPlan(plans_pb2.GetPlanRequest(key=created.key), metadata=meta)
    assert _document(fetched) == json.loads(text)
    assert _document(created) == json.loads(text)
    UUID(fetched.id)


async def test_invalid_plans_are_invalid_argument_with_paths(api: Api) -> None:
    meta = md(A)
    plan = json.loads(FANOUT_PLAN)
    plan["step"]["sub_steps"][0]["iterate_over"] = "response.body.contacts[*"
    plan["step"]["url"] = ""
    error = await error_of(
        api.plans.CreatePlan(json_format.ParseDict(plan, plans_pb2.CreatePlanRequest()), metadata=meta)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert "step.sub_steps[0].iterate_over" in details and "step.url" in details
    bad_key = await error_of(
        api.plans.CreatePlan(
            plans_pb2.CreatePlanRequest(key="Bad Key!", step=steps_pb2.Step(url="https://x")), metadata=meta
        )
    )
    assert bad_key.code() == grpc.StatusCode.INVALID_ARGUMENT and "key" in (bad_key.details() or "")
    missing = await error_of(api.plans.CreatePlan(_plan_request(BASIC_PLAN), metadata=meta))
    assert missing.code() == grpc.StatusCode.FAILED_PRECONDITION and "salesforce" in (missing.details() or "")
    assert (
        await status_of(api.plans.GetPlan(plans_pb2.GetPlanRequest(key="nope"), metadata=meta))
        == grpc.StatusCode.NOT_FOUND
    )


async def test_secrets_never_come_back(api: Api) -> None:
    a = await _setup_tenant(api, A)
    meta = md(A)
    responses = [
        a["config"],
        a["flow"],
        await api.configs.GetConfig(configs_pb2.GetConfigRequest(id=a["config"].id), metadata=meta),
        await api.configs.ListConfigs(
            configs_pb2.ListConfigsRequest(integration_id=a["integration"].id), metadata=meta
        ),
        await api.auth_flows.GetAuthFlow(auth_flows_pb2.GetAuthFlowRequest(id=a["flow"].id), metadata=meta),
        await api.auth_flows.ListAuthFlows(
            auth_flows_pb2.ListAuthFlowsRequest(integration_id=a["integration"].id), metadata=meta
        ),
    ]
    for response in responses:
        wire = response.SerializeToString()
        assert b"api-key-secret-value" not in wire and b"client-secret-value" not in wire
    assert a["config"].values["api_key"] == MASK and a["flow"].client_secret == MASK
    assert a["flow"].refresh_token == ""
    # At rest, too.
    async with api.sessions() as session:
        from sqlalchemy import text as sql

        raw = await session.scalar(sql("SELECT values::text || definition::text FROM configs, auth_flows"))
    assert raw is not None and "api-key-secret-value" not in raw and "client-secret-value" not in raw


async def test_bad_ids_missing_rows_and_no_tenant(api: Api) -> None:
    meta = md(A)
    assert (
        await status_of(
            api.integrations.GetIntegration(
                integrations_pb2.GetIntegrationRequest(id="not-a-uuid"), metadata=meta
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        await status_of(
            api.executions.GetExecution(executions_pb2.GetExecutionRequest(id=str(uuid4())), metadata=meta)
        )
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        await status_of(api.integrations.ListIntegrations(integrations_pb2.ListIntegrationsRequest()))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await status_of(
            api.integrations.ListIntegrations(
                integrations_pb2.ListIntegrationsRequest(page_token="garbage!"), metadata=meta
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        await status_of(
            api.auth_flows.CreateAuthFlow(
                auth_flows_pb2.CreateAuthFlowRequest(integration_id=str(uuid4()), name="x"), metadata=meta
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
