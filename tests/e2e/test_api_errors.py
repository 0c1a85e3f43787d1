"""Duplicates are ALREADY_EXISTS (409); malformed requests and plans that do not validate are
INVALID_ARGUMENT (400) with the path of the problem in the message. REST and gRPC alike."""

from __future__ import annotations

import grpc
import httpx

from tests.e2e.api import rest_result, unique
from tests.e2e.conftest import Apis, Tokens

EXISTS = grpc.StatusCode.ALREADY_EXISTS
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_duplicate_keys(api: Apis) -> None:
    a = api.a
    integration = await a.integration()
    (await a.call("IntegrationService.CreateIntegration", name=integration["name"])).expect(EXISTS)

    config = await a.config(integration["id"])
    again = await a.call("ConfigService.CreateConfig", integration_id=integration["id"], name=config["name"])
    again.expect(EXISTS)

    plan = await a.plan(integration["name"])
    dup = await a.call("PlanService.CreatePlan", key=plan["key"], step={"url": "http://127.0.0.1:9/"})
    dup.expect(EXISTS)
    assert plan["key"] in dup.message


async def test_invalid_plan_names_the_field_path(api: Apis) -> None:
    plan = {
        "key": unique("bad-plan"),
        "step": {
            "url": "{config.base_url}/api/contacts",
            "sub_steps": [
                {"iterate_over": "response.body.contacts[*", "url": "{config.base_url}/x/{item.id}"}
            ],
        },
    }
    result = (await api.a.call("PlanService.CreatePlan", plan)).expect(INVALID)
    assert "step.sub_steps[0].iterate_over" in result.message, result.message
    (await api.a.call("PlanService.GetPlan", key=plan["key"])).expect(grpc.StatusCode.NOT_FOUND)


async def test_invalid_plan_update_is_rejected_and_changes_nothing(api: Apis) -> None:
    integration = await api.a.integration()
    plan = await api.a.plan(integration["name"])
    bad = {
        **plan,
        "step": {"url": "{config.base_url}/x", "while": "response.body.has_more ==", "method": "GET"},
    }
    for name in ("id", "created_at", "updated_at"):
        bad.pop(name)
    result = (await api.a.call("PlanService.UpdatePlan", bad)).expect(INVALID)
    assert "step.while" in result.message, result.message
    assert (await api.a.call("PlanService.GetPlan", key=plan["key"])).ok() == plan


async def test_plan_without_step_or_key(api: Apis) -> None:
    no_step = (await api.a.call("PlanService.CreatePlan", key=unique("no-step"))).expect(INVALID)
    assert "step" in no_step.message
    no_key = (await api.a.call("PlanService.CreatePlan", step={"url": "http://127.0.0.1:9/"})).expect(INVALID)
    assert "key" in no_key.message


async def test_malformed_ids_and_missing_required_fields(api: Apis) -> None:
    a = api.a
    result = (await a.call("IntegrationService.GetIntegration", id="not-a-uuid")).expect(INVALID)
    assert result.message.startswith("id:"), result.message
    (await a.call("IntegrationService.CreateIntegration", description="no name")).expect(INVALID)
    listed = (await a.call("ConfigService.ListConfigs")).expect(INVALID)  # integration_id is required
    assert "integration_id" in listed.message
    (await a.call("ConfigService.CreateConfig", name=unique("c"))).expect(INVALID)
    (await a.call("AuthFlowService.ListAuthFlows", integration_id="nope")).expect(INVALID)
    (await a.call("StatisticsService.ListStatistics")).expect(INVALID)  # plan_key is required
    integration = await a.integration()
    no_type = await a.call(
        "AuthFlowService.CreateAuthFlow", integration_id=integration["id"], name=unique("f")
    )
    assert "type" in no_type.expect(INVALID).message
    plan = await a.plan(integration["name"])
    no_enabled = await a.call("PlanService.SetPlanEnabled", key=plan["key"])
    assert "enabled" in no_enabled.expect(INVALID).message


async def test_rest_malformed_json_and_unknown_query_parameter(base_url: str, tokens: Tokens) -> None:
    headers = {"authorization": f"Bearer {tokens.a}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        bad_json = await client.post("/api/v1/plans", content=b'{"key": "x", "step": ', headers=headers)
        assert bad_json.status_code == 400, bad_json.text
        wrong_type = await client.post(
            "/api/v1/plans", json={"key": "x", "wait_seconds": "soon"}, headers=headers
        )
        assert wrong_type.status_code == 400, wrong_type.text
        assert "wait_seconds" in wrong_type.text
        unknown = await client.get("/api/v1/plans", params={"colour": "blue"}, headers=headers)
        assert "colour" in rest_result("PlanService.ListPlans", unknown).expect(INVALID).message
        no_route = await client.get("/api/v1/nothing-here", headers=headers)
        rest_result("-", no_route).expect(grpc.StatusCode.NOT_FOUND)


async def test_rest_body_parse_errors_are_json(base_url: str, tokens: Tokens) -> None:
    headers = {"authorization": f"Bearer {tokens.a}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        for body in (b'{"key": "x", "step": ', b'{"key": "x", "wait_seconds": "soon"}'):
            response = await client.post("/api/v1/plans", content=body, headers=headers)
            assert response.headers["content-type"].startswith("application/json"), response.text
            assert rest_result("PlanService.CreatePlan", response).expect(INVALID).message
