"""Running plans when things go wrong: status policies, retries, auth, bad input, time, cancellation."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest
from engine_fakes import EPOCH, FakeHttp, Harness, RecordingLimiter, RecordingSink, plan_of, response

from engine.errors import (
    ConnectFailedError,
    EgressDeniedError,
    EmitError,
    RateLimitExceededError,
    RequestTimeoutError,
    ResponseTooLargeError,
)
from engine.ports import HttpRequest, HttpResponse
from settings.model import ExecutionLimits

URL = "https://api.example.com/x"


async def test_abort_on_status_publishes_to_api_errors_and_aborts() -> None:
    harness = Harness(FakeHttp(queue=[response({"e": 1}, status=403)]))
    outcome = await harness.run(plan_of({"url": URL, "abort_on": [401, 403]}))
    assert outcome.status == "aborted" and "HTTP 403 is in abort_on" in (outcome.error or "")
    (error,) = harness.sink.errors
    assert error.status_code == 403 and error.response_body == {"e": 1} and error.sequence == 1
    assert harness.sink.events[-1].status == "aborted"


async def test_ignore_on_status_publishes_to_api_errors_and_the_run_goes_on() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items"):
            return response({"items": [{"id": 1}, {"id": 2}, {"id": 3}]})
        return response({"gone": True}, status=404) if request.url.endswith("/2") else response({"ok": 1})

    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": "https://api.example.com/items",
            "sub_steps": [
                {"iterate_over": "response.body.items", "url": "https://api.example.com/items/{item.id}",
                 "ignore_on": [404], "concurrency": 1}
            ],
        }
    )  # fmt: skip
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    assert [m.status_code for m in harness.sink.errors] == [404]
    assert len(harness.sink.responses) == 3
    assert sorted(m.sequence for m, _ in harness.sink.messages) == [1, 2, 3, 4]


async def test_server_errors_are_retried_with_fibonacci_backoff_then_succeed() -> None:
    queue = [response(status=500), response(status=502), response(status=503), response({"ok": 1})]
    harness = Harness(FakeHttp(queue=queue))
    outcome = await harness.run(plan_of({"url": URL, "retry": {"max_attempts": 4}}))
    assert outcome.status == "success", outcome.error
    assert harness.time.slept == [1.0, 1.0, 2.0]
    assert outcome.stats.requests == 4 and len(harness.sink.responses) == 1 and not harness.sink.errors


async def test_exhausted_retries_publish_the_last_response_and_fail() -> None:
    harness = Harness(FakeHttp(queue=[response({"why": "down"}, status=503)] * 3))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed"
    assert "HTTP 503" in (outcome.error or "") and "after 3 attempts" in (outcome.error or "")
    (error,) = harness.sink.errors
    assert error.response_body == {"why": "down"} and error.error == outcome.error


@pytest.mark.parametrize(
    ("retry_after", "expected_sleep"),
    [
        ("4", 4.0),
        (format_datetime(EPOCH + timedelta(seconds=9), usegmt=True), 9.0),
        ("0", 1.0),  # no hint: normal backoff, never an immediate retry storm
        (format_datetime(EPOCH - timedelta(seconds=9), usegmt=True), 1.0),
    ],
)
async def test_429_honours_retry_after_in_seconds_or_as_a_date(
    retry_after: str, expected_sleep: float
) -> None:
    queue = [response(status=429, headers={"retry-after": retry_after}), response({"ok": 1})]
    harness = Harness(FakeHttp(queue=queue))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "success"
    assert harness.time.slept == [pytest.approx(expected_sleep)]
    limiter: RecordingLimiter = harness.limiter
    assert limiter.observed[0][0] == 429  # the limiter saw the back-pressure too


async def test_client_errors_without_a_rule_fail_without_retrying() -> None:
    harness = Harness(FakeHttp(queue=[response({"bad": 1}, status=400)]))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed" and "HTTP 400" in (outcome.error or "")
    assert len(harness.http.requests) == 1 and harness.time.slept == []


async def test_retry_on_replaces_the_default_retryable_statuses() -> None:
    harness = Harness(FakeHttp(queue=[response(status=409), response({"ok": 1})]))
    outcome = await harness.run(plan_of({"url": URL, "retry": {"retry_on": [409]}}))
    assert outcome.status == "success"


async def test_retry_when_retries_a_successful_response_until_it_stops_matching() -> None:
    queue = [response({"status": "busy"}), response({"status": "busy"}), response({"status": "done"})]
    harness = Harness(FakeHttp(queue=queue))
    outcome = await harness.run(plan_of({"url": URL, "retry_when": "response.body.status == 'busy'"}))
    assert outcome.status == "success"
    assert [m.response_body for m in harness.sink.responses] == [{"status": "done"}]


async def test_retry_when_that_never_clears_fails_after_max_attempts() -> None:
    harness = Harness(FakeHttp(queue=[response({"status": "busy"})] * 2))
    plan = plan_of({"url": URL, "retry_when": "response.body.status == 'busy'", "retry": {"max_attempts": 2}})
    outcome = await harness.run(plan)
    assert outcome.status == "failed" and "still matches retry_when" in (outcome.error or "")


@pytest.mark.parametrize("error", [ConnectFailedError("refused"), RequestTimeoutError("slow")])
async def test_connection_failures_and_timeouts_are_retried(error: Exception) -> None:
    harness = Harness(FakeHttp(queue=[error, response({"ok": 1})]))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "success" and harness.time.slept == [1.0]


async def test_connection_failures_that_persist_fail_with_the_error_on_api_errors() -> None:
    harness = Harness(FakeHttp(queue=[ConnectFailedError("connection refused")] * 3))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed"
    assert outcome.error == "step 0: connection refused (after 3 attempts)"
    (error,) = harness.sink.errors
    assert error.status_code == 0 and error.request_url == URL and error.error == outcome.error


@pytest.mark.parametrize(
    "error",
    [
        EgressDeniedError("10.0.0.1 is a private address"),
        ResponseTooLargeError("response over 10485760 bytes"),
    ],
)
async def test_refused_addresses_and_oversized_responses_fail_at_once(error: Exception) -> None:
    harness = Harness(FakeHttp(queue=[error]))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed" and str(error) in (outcome.error or "")
    assert len(harness.http.requests) == 1 and len(harness.sink.errors) == 1


async def test_a_401_refreshes_auth_and_retries_once_with_the_new_token() -> None:
    harness = Harness(FakeHttp(queue=[response(status=401), response({"ok": 1})]))
    plan = plan_of({"url": URL, "headers": {"Authorization": "Bearer {auth.token}"}, "abort_on": [401]})
    outcome = await harness.run(plan)
    assert outcome.status == "success"
    assert [r.headers["Authorization"] for r in harness.http.requests] == ["Bearer token-1", "Bearer token-2"]
    assert harness.auth.refreshes == 1


async def test_a_second_401_after_refresh_follows_the_status_rules() -> None:
    harness = Harness(FakeHttp(queue=[response(status=401), response(status=401)]))
    plan = plan_of({"url": URL, "headers": {"Authorization": "Bearer {auth.token}"}, "abort_on": [401]})
    outcome = await harness.run(plan)
    assert outcome.status == "aborted" and harness.auth.refreshes == 1


async def test_concurrent_401s_refresh_the_token_once() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items"):
            return response({"items": list(range(20))})
        return response({"ok": 1}) if request.headers["Authorization"] == "token-2" else response(status=401)

    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": "https://api.example.com/items",
            "sub_steps": [{"iterate_over": "response.body.items", "url": "https://api.example.com/i/{item}",
                           "headers": {"Authorization": "{auth.token}"}, "concurrency": 10}],
        }
    )  # fmt: skip
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    assert harness.auth.refreshes == 1


async def test_abort_when_publishes_the_response_to_api_errors_and_aborts() -> None:
    harness = Harness(FakeHttp(queue=[response({"error": "account suspended"})]))
    outcome = await harness.run(plan_of({"url": URL, "abort_when": "response.body.error != null"}))
    assert outcome.status == "aborted" and "abort_when" in (outcome.error or "")
    assert (
        harness.sink.errors[0].response_body == {"error": "account suspended"} and not harness.sink.responses
    )


async def test_a_text_body_where_json_fields_are_read_fails_clearly() -> None:
    harness = Harness(FakeHttp(queue=[response("<html>oops</html>", body_format="text")]))
    outcome = await harness.run(plan_of({"url": URL, "while": "response.body.has_more == true"}))
    assert outcome.status == "failed"
    assert "reads fields of the response body, but the body is text" in (outcome.error or "")
    assert harness.sink.errors[0].response_body == "<html>oops</html>"


async def test_iterate_over_yielding_an_object_fails_clearly() -> None:
    harness = Harness(FakeHttp(queue=[response({"items": {"a": 1}})]))
    plan = plan_of(
        {
            "url": URL,
            "sub_steps": [{"iterate_over": "response.body.items", "url": "https://a.example/{item}"}],
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "failed" and "produced dict, not an array" in (outcome.error or "")


async def test_a_template_yielding_an_invalid_url_fails_before_sending() -> None:
    harness = Harness(FakeHttp(), config={})
    outcome = await harness.run(plan_of({"url": "{config.base_url}/x"}))
    assert outcome.status == "failed" and "not an absolute http(s) URL" in (outcome.error or "")
    assert harness.http.requests == [] and len(harness.sink.errors) == 1


async def test_a_runtime_expression_error_fails_with_the_expression_named() -> None:
    harness = Harness(FakeHttp(queue=[response({"n": 5})]))
    outcome = await harness.run(plan_of({"url": URL, "extract": {"len": "length(response.body.n)"}}))
    assert outcome.status == "failed" and "cannot evaluate 'length(response.body.n)'" in (outcome.error or "")


async def test_a_request_body_over_the_limit_is_refused() -> None:
    harness = Harness(FakeHttp(), limits=ExecutionLimits(max_request_body_size=10), config={"blob": "x" * 50})
    outcome = await harness.run(plan_of({"url": URL, "method": "POST", "body": {"b": "{config.blob}"}}))
    assert outcome.status == "failed" and "limit is 10" in (outcome.error or "")
    assert harness.http.requests == []


async def test_a_rate_limit_wait_too_long_parks_the_execution() -> None:
    limiter = RecordingLimiter(raise_with=RateLimitExceededError("needs 120s", wait_s=120.0))
    harness = Harness(FakeHttp(), limiter=limiter)
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "rate_limited" and outcome.resume_after_s == 120.0
    assert harness.sink.errors[0].error == outcome.error


async def test_secrets_and_auth_values_are_redacted_everywhere_in_messages() -> None:
    harness = Harness(
        FakeHttp(
            lambda r: response(
                {"echo": "x"}, headers={"set-cookie": "sid=1"}, url=f"{r.url}?key=sk-live-123&token-1"
            )
        ),
        secrets=("sk-live-123",),
        config={"key": "sk-live-123"},
    )
    plan = plan_of(
        {
            "url": "https://api.example.com/x",
            "params": {"key": "{config.key}"},
            "headers": {"X-Custom": "{auth.token}"},
            "extract": {"leak": "join(' ', [`\"sk-live-123\"`, 'ok'])"},
        }
    )
    outcome = await harness.run(plan)
    (message,) = harness.sink.responses
    assert outcome.status == "success"
    assert "sk-live-123" not in message.request_url and "token-1" not in message.request_url
    assert message.request_headers["X-Custom"] == "[REDACTED]"
    assert message.response_headers["set-cookie"] == "[REDACTED]"
    assert message.extracted_data == {"leak": "[REDACTED] ok"}


async def test_execution_timeout_fails_with_a_clear_error() -> None:
    harness = Harness(
        FakeHttp(queue=[response(status=503)] * 10), limits=ExecutionLimits(max_execution_time_s=5)
    )
    outcome = await harness.run(plan_of({"url": URL, "retry": {"max_attempts": 10}}))
    assert outcome.status == "failed" and "MAX_EXECUTION_TIME of 5s" in (outcome.error or "")
    assert harness.sink.events[-1].status == "failed"


async def test_a_hung_request_is_cut_off_by_the_execution_timeout() -> None:
    async def hang(request: HttpRequest) -> HttpResponse:
        await asyncio.Event().wait()
        raise AssertionError

    harness = Harness(FakeHttp(hang), limits=ExecutionLimits(max_execution_time_s=0.05))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed" and "MAX_EXECUTION_TIME" in (outcome.error or "")


async def test_the_cancel_event_stops_a_waiting_execution_within_a_second() -> None:
    async def hang(request: HttpRequest) -> HttpResponse:
        await asyncio.Event().wait()
        raise AssertionError

    harness = Harness(FakeHttp(hang))
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, cancel.set)
    started = time.monotonic()
    outcome = await harness.run(plan_of({"url": URL}), cancel=cancel)
    assert time.monotonic() - started < 1.0
    assert outcome.status == "cancelled"
    assert (
        harness.sink.events[-1].type == "execution.completed"
        and harness.sink.events[-1].status == "cancelled"
    )


async def test_cancelling_the_task_stops_it_promptly_and_still_reports_completion() -> None:
    async def hang(request: HttpRequest) -> HttpResponse:
        await asyncio.Event().wait()
        raise AssertionError

    harness = Harness(FakeHttp(hang))
    task = asyncio.ensure_future(harness.run(plan_of({"url": URL})))
    await asyncio.sleep(0.05)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert harness.sink.events[-1].status == "cancelled"


async def test_a_broken_sink_fails_the_execution_instead_of_crashing() -> None:
    sink = RecordingSink(fail_with=EmitError("broker down"))
    harness = Harness(FakeHttp(queue=[response({"a": 1})]), sink=sink)
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed" and "broker down" in (outcome.error or "")


async def test_an_unexpected_bug_in_an_adapter_becomes_a_failed_outcome() -> None:
    def broken(request: HttpRequest) -> HttpResponse:
        raise KeyError("oops")

    harness = Harness(FakeHttp(broken))
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed" and "internal error: KeyError" in (outcome.error or "")
