"""Plan validation: the seed examples parse, every step option is understood, and every kind of
mistake is reported with its path, all at once."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.errors import FieldError, InvalidArgumentError, PlanValidationError
from engine.ports import RateLimitRule
from engine.templates import JsonTemplate, Template
from engine.validate import validate_plan, validate_plan_json
from settings.model import ExecutionLimits

BASIC_PLAN = {
    "key": "salesforce-contacts",
    "integration": "salesforce",
    "wait_seconds": 3600,
    "enabled": True,
    "step": {
        "url": "{config.base_url}/api/contacts",
        "method": "GET",
        "headers": {"Authorization": "Bearer {auth.token}", "Content-Type": "application/json"},
        "params": {"limit": "100", "offset": "{context.next_offset || '0'}"},
        "while": "response.body.has_more == true",
        "context_updates": {"next_offset": "response.body.next_offset"},
    },
}

FANOUT_PLAN = {
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
                "emit_to_kafka": True,
            }
        ],
    },
    "rate_limits": [{"requests": 100, "window_secs": 60, "scope": "per_config"}],
}

EVERY_OPTION = {
    "key": "every-option",
    "integration": "acme",
    "description": "all the knobs",
    "wait_seconds": 60,
    "enabled": True,
    "auth_flow_id": "flow-1",
    "rate_limits": [{"requests": 10, "window_secs": 1, "scope": "global", "priority": 5, "max_wait_secs": 3}],
    "step": {
        "name": "orders",
        "url": "{config.base_url}/orders",
        "method": "POST",
        "headers": {"X-Tenant": "{config.tenant}"},
        "params": {"page_size": 50, "cursor": "{prev.body.next}"},
        "body": {"since": "{context.since}", "limit": "{config.limit}"},
        "while": "response.body.next != null",
        "abort_when": "response.body.error == 'fatal'",
        "retry_when": "response.body.status == 'busy'",
        "break_when": "length(response.body.orders) == `0`",
        "emit_to_kafka": False,
        "abort_on": [401, 403],
        "ignore_on": [404],
        "retry": {
            "max_attempts": 5,
            "backoff": "fibonacci",
            "max_backoff_seconds": 30,
            "retry_on": [502, 503],
        },
        "rate_limits": [{"requests": 5, "window_secs": 2, "scope": "per_endpoint"}],
        "context_updates": {"since": "response.body.server_time"},
        "extract": {"order_count": "length(response.body.orders)"},
        "timeout_seconds": 20,
        "max_loops": 50,
        "sub_steps": [
            {
                "name": "lines",
                "iterate_over": "response.body.orders[*]",
                "concurrency": 7,
                "fanout_emit_mode": "page",
                "url": "{config.base_url}/orders/{item.id}/lines",
                "headers": {"X-Parent": "{parent.order_count}"},
            }
        ],
    },
}


def test_basic_seed_plan_parses() -> None:
    plan = validate_plan(BASIC_PLAN)
    assert (plan.key, plan.integration, plan.wait_seconds, plan.enabled) == (
        "salesforce-contacts",
        "salesforce",
        3600,
        True,
    )
    step = plan.step
    assert step.url.source == "{config.base_url}/api/contacts"
    assert [name for name, _ in step.headers] == ["Authorization", "Content-Type"]
    assert [name for name, _ in step.params] == ["limit", "offset"]
    assert step.while_ is not None and step.while_.source == "response.body.has_more == true"
    assert [name for name, _ in step.context_updates] == ["next_offset"]
    assert step.emit_to_kafka is True and step.path == "0"


def test_fanout_seed_plan_parses_with_its_defaults() -> None:
    plan = validate_plan(FANOUT_PLAN)
    assert plan.enabled is False and plan.wait_seconds is None and plan.integration == ""
    (sub,) = plan.step.sub_steps
    assert sub.iterate_over is not None and sub.iterate_over.source == "response.body.contacts[*]"
    assert (sub.concurrency, sub.fanout_emit_mode, sub.emit_to_kafka, sub.path, sub.depth) == (
        50,
        "record",
        True,
        "0.0",
        1,
    )
    assert plan.rate_limits[0].rule == RateLimitRule(100, 60.0, "per_config", 0)


def test_every_step_option_is_parsed_into_the_model() -> None:
    plan = validate_plan(EVERY_OPTION)
    step = plan.step
    assert step.path == "orders" and step.method == "POST"
    assert isinstance(step.body, JsonTemplate) and step.body_format == "json"
    assert {name for name, _ in step.params} == {"page_size", "cursor"}
    assert step.abort_on == {401, 403} and step.ignore_on == {404}
    assert (step.retry.max_attempts, step.retry.max_backoff_s, step.retry.retry_on) == (5, 30.0, {502, 503})
    assert step.rate_limits[0].rule.scope == "per_endpoint"
    assert plan.rate_limits[0].rule.priority == 5 and plan.rate_limits[0].max_wait_s == 3.0
    assert step.timeout_s == 20.0 and step.max_loops == 50 and step.emit_to_kafka is False
    assert all(e is not None for e in (step.while_, step.abort_when, step.retry_when, step.break_when))
    (lines,) = step.sub_steps
    assert (lines.path, lines.concurrency, lines.fanout_emit_mode) == ("orders.lines", 7, "page")
    assert plan.source is EVERY_OPTION


@pytest.mark.parametrize(
    ("headers", "body", "expected_format", "expected_type"),
    [
        ({}, {"a": "{config.x}"}, "json", JsonTemplate),
        ({}, ["{config.x}"], "json", JsonTemplate),
        ({"content-type": "application/x-www-form-urlencoded"}, {"a": "1"}, "form", JsonTemplate),
        ({}, "raw {config.x}", "raw", Template),
    ],
)
def test_body_format_is_inferred_from_the_body_and_content_type(
    headers, body, expected_format, expected_type
) -> None:
    plan = validate_plan(
        {"key": "k", "step": {"url": "https://x/", "method": "POST", "headers": headers, "body": body}}
    )
    assert plan.step.body_format == expected_format
    assert isinstance(plan.step.body, expected_type)


def test_proto_style_empty_strings_count_as_unset() -> None:
    document = copy.deepcopy(FANOUT_PLAN)
    document.update({"integration": "", "description": "", "auth_flow_id": ""})
    document["step"].update({"name": "", "while": "", "abort_when": "", "method": ""})
    document["step"]["sub_steps"][0].update({"fanout_emit_mode": ""})
    document["rate_limits"][0]["scope"] = ""
    plan = validate_plan(document)
    assert plan.step.while_ is None and plan.step.method == "GET" and plan.auth_flow_id is None


def _step(**fields: Any) -> dict[str, Any]:
    return {"key": "k", "step": {"url": "{config.base_url}/x", **fields}}


def _sub(**fields: Any) -> dict[str, Any]:
    sub = {"iterate_over": "response.body.items", "url": "{config.base_url}/{item.id}", **fields}
    return _step(sub_steps=[sub])


def _nested(depth: int) -> dict[str, Any]:
    step: dict[str, Any] = {"url": "https://x/{item.id}", "iterate_over": "response.body"}
    for _ in range(depth - 1):
        step = {"url": "https://x/{item.id}", "iterate_over": "response.body", "sub_steps": [step]}
    return {"key": "k", "step": {"url": "https://x/", "sub_steps": [step]}}


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"step": {"url": "https://x"}}, "key", "is required"),
        ({"key": "Bad Key", "step": {"url": "https://x"}}, "key", "must match"),
        ({"key": "k"}, "step", "is required"),
        ({"key": "k", "step": {}}, "step.url", "is required"),
        ({"key": "k", "step": {"url": "https://x"}, "shedule": 1}, "shedule", "unknown field"),
        (_step(urls="x"), "step.urls", "did you mean 'url'"),
        (_step(method="FETCH"), "step.method", "must be one of GET, POST, PUT, DELETE, PATCH"),
        ({"key": "k", "step": {"url": "{confg.base_url}/x"}}, "step.url", "unknown variable 'confg'"),
        (_step(headers={"A": "{item.id}"}), "step.headers.A", "only available in sub-steps"),
        (_step(params={"c": "{response.body.next}"}), "step.params.c", "use 'prev'"),
        (_step(body={"a": ["{bogus.x}"]}), "step.body", "unknown variable 'bogus'"),
        (_step(body={"a": ["{x[}"]}), "step.body.a[0]", "invalid JMESPath"),
        (_step(**{"while": "response.body["}), "step.while", "invalid JMESPath"),
        (_step(abort_when=5), "step.abort_when", "must be a JMESPath expression string"),
        (_step(break_when="resp.body.x"), "step.break_when", "did you mean 'response'"),
        (_step(emit_to_kafka="yes"), "step.emit_to_kafka", "must be true or false"),
        (_step(abort_on=[200, 700]), "step.abort_on[1]", "HTTP status code"),
        (_step(ignore_on="404"), "step.ignore_on", "must be an array"),
        (_step(abort_on=[404], ignore_on=[404]), "step.ignore_on", "also in abort_on"),
        (_step(retry={"max_attempts": 0}), "step.retry.max_attempts", "between 1 and 20"),
        (_step(retry={"max_backoff_seconds": 600}), "step.retry.max_backoff_seconds", "between"),
        (_step(retry={"backoff": "exponential"}), "step.retry.backoff", "only 'fibonacci'"),
        (_step(retry={"max_retries": 3}), "step.retry.max_retries", "unknown field"),
        (_step(iterate_over="response.body"), "step.iterate_over", "only valid on a sub-step"),
        (_step(concurrency=5), "step.concurrency", "only valid on a sub-step"),
        (_step(sub_steps=[{"url": "https://x/{item.id}"}]), "step.sub_steps[0].iterate_over", "is required"),
        (_sub(iterate_over="response.body["), "step.sub_steps[0].iterate_over", "invalid JMESPath"),
        (_sub(iterate_over="item.children"), "step.sub_steps[0].iterate_over", "only available in sub-steps"),
        (_sub(concurrency=0), "step.sub_steps[0].concurrency", "between 1 and 10000"),
        (_sub(concurrency=2.5), "step.sub_steps[0].concurrency", "integer"),
        (_sub(fanout_emit_mode="batch"), "step.sub_steps[0].fanout_emit_mode", "record or page"),
        (_sub(name="a.b"), "step.sub_steps[0].name", "must match"),
        (_step(sub_steps={"url": "x"}), "step.sub_steps", "must be an array"),
        (_step(rate_limits=[{"requests": 0, "window_secs": 1}]), "step.rate_limits[0].requests", ">= 1"),
        (_step(rate_limits=[{"window_secs": 1}]), "step.rate_limits[0].requests", "is required"),
        (_step(rate_limits=[{"requests": 1, "window_secs": 1, "scope": "tenant"}]),
         "step.rate_limits[0].scope", "per_config, per_endpoint, global"),
        ({"key": "k", "step": {"url": "https://x"}, "rate_limits": {}}, "rate_limits", "must be an array"),
        (_step(context_updates={"x": "response.body["}), "step.context_updates.x", "invalid JMESPath"),
        (_step(context_updates=["x"]), "step.context_updates", "must be an object"),
        (_step(extract={"body": "response.body.id"}), "step.extract.body", "field of the response variable"),
        (_step(timeout_seconds=0), "step.timeout_seconds", "between"),
        (_step(max_loops=5000), "step.max_loops", "between 1 and 1000"),
        (_step(headers={"Bad Header": "x"}), "step.headers.Bad Header", "not a valid header name"),
        (_step(body=["a"], headers={"Content-Type": "application/x-www-form-urlencoded"}), "step.body",
         "form body must be an object"),
        (_nested(6), "step" + ".sub_steps[0]" * 6, "the limit is 5"),
        ({"key": "k", "wait_seconds": 0, "step": {"url": "https://x"}}, "wait_seconds", ">= 1"),
        ({"key": "k", "enabled": "true", "step": {"url": "https://x"}}, "enabled", "true or false"),
        ({"key": "k", "step": "https://x"}, "step", "must be an object"),
    ],
)  # fmt: skip
def test_each_mistake_is_reported_with_its_path(document: dict, path: str, message: str) -> None:
    with pytest.raises(PlanValidationError) as caught:
        validate_plan(document)
    matching = [e for e in caught.value.errors if e.path == path and message in e.message]
    assert matching, f"no error at {path} containing {message!r}; got {caught.value.errors}"


def test_nesting_up_to_the_limit_is_fine() -> None:
    plan = validate_plan(_nested(5))
    assert max(step.depth for step in plan.steps()) == 5


def test_nesting_limit_comes_from_execution_limits() -> None:
    with pytest.raises(PlanValidationError):
        validate_plan(_nested(3), limits=ExecutionLimits(max_nesting_depth=2))


def test_all_errors_are_reported_together_and_listed_in_the_message() -> None:
    document = {
        "key": "k",
        "step": {
            "url": "{confg.base_url}/x",
            "method": "FETCH",
            "sub_steps": [{"url": "https://x/{item.id}", "iterate_over": "response.body[", "concurrency": 0}],
        },
    }
    with pytest.raises(PlanValidationError) as caught:
        validate_plan(document)
    paths = {error.path for error in caught.value.errors}
    assert paths >= {
        "step.url",
        "step.method",
        "step.sub_steps[0].iterate_over",
        "step.sub_steps[0].concurrency",
    }
    text = str(caught.value)
    assert "step.sub_steps[0].iterate_over: invalid JMESPath" in text
    assert "step.url: unknown variable 'confg'" in text
    assert isinstance(caught.value, InvalidArgumentError)


def test_json_text_entry_point_reports_bad_json() -> None:
    with pytest.raises(PlanValidationError) as caught:
        validate_plan_json(b"{not json")
    assert caught.value.errors[0] == FieldError("", caught.value.errors[0].message)
    assert validate_plan_json(b'{"key": "k", "step": {"url": "https://x"}}').key == "k"


def test_non_object_plan_is_rejected() -> None:
    with pytest.raises(PlanValidationError, match="must be an object"):
        validate_plan([])  # type: ignore[arg-type]
