"""One request of a step, through the rate limiter, with retries, auth refresh and status policy.

Policy, in the spec's order, for each response:
1. 401 and the token was not refreshed yet: refresh auth once and send again (not a retry).
2. status in ``abort_on``: api-errors, then the execution aborts.
3. status in ``ignore_on``: api-errors, then the step goes on without this response.
4. ``retry_when`` holds: retry (Fibonacci backoff), and when attempts run out, api-errors + fail.
5. 2xx: done.
6. status in ``retry.retry_on`` (default 429 and 5xx): retry, as in 4.
7. anything else: api-errors + fail.
Connection failures and timeouts are retried like 6. Every failure that ends the step is
published on api-errors here, with the request that caused it, before the error propagates as
ReportedError so no outer layer publishes it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from engine.backoff import retry_delay
from engine.errors import (
    ExecutionAbortedError,
    HttpStatusError,
    OrchidError,
    RateLimitExceededError,
    RequestError,
)
from engine.plan import Step
from engine.ports import HttpRequest, HttpResponse, JsonValue, RateLimitRule, RateLimitSubject
from engine.request_builder import endpoint_of
from engine.state import Execution

__all__ = ["Exchange", "ReportedError", "fail", "fetch", "response_variable"]

Verdict = Literal["ok", "refresh", "abort", "ignore", "retry", "fail"]


class ReportedError(Exception):
    """An error already published on api-errors; carries the OrchidError that ended the step."""

    def __init__(self, cause: OrchidError, text: str | None = None) -> None:
        self.text = text if text is not None else cause.message
        super().__init__(self.text)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Exchange:
    request: HttpRequest
    response: HttpResponse
    variables: dict[str, JsonValue]  # the request variables plus ``response``


def response_variable(response: HttpResponse) -> dict[str, JsonValue]:
    headers = response.headers
    return {
        "status_code": response.status_code,
        "headers": headers.copy() if type(headers) is dict else dict(headers),
        "body": response.body,
        "url": response.url,
    }


def _verdict(
    step: Step, response: HttpResponse, variables: Mapping[str, JsonValue], refreshed: bool
) -> Verdict:
    status = response.status_code
    if status == 401 and not refreshed:
        return "refresh"
    if status in step.abort_on:
        return "abort"
    if status in step.ignore_on:
        return "ignore"
    if step.retry_when is not None and step.retry_when.test(variables):
        return "retry"
    if 200 <= status < 300:
        return "ok"
    return "retry" if step.retry.retries_status(status) else "fail"


def _rules(ex: Execution, step: Step) -> tuple[list[RateLimitRule], float]:
    cached = ex.step_rules.get(id(step))  # the plan outlives the execution: ids are stable
    if cached is None:
        specs = step.rate_limits + ex.plan.rate_limits
        waits = [spec.max_wait_s for spec in specs if spec.max_wait_s is not None]
        max_wait = min(waits) if waits else ex.limits.rate_limit_max_wait_s
        cached = ex.step_rules[id(step)] = ([spec.rule for spec in specs], max_wait)
    return cached


def _subject(ex: Execution, endpoint: str) -> RateLimitSubject:
    subject = ex.subjects.get(endpoint)
    if subject is None:
        meta = ex.meta
        subject = RateLimitSubject(meta.tenant_id, meta.config_id, meta.plan_key, endpoint, meta.integration)
        if len(ex.subjects) < 1024:
            ex.subjects[endpoint] = subject
    return subject


async def _send(
    ex: Execution, step: Step, request: HttpRequest, variables: Mapping[str, JsonValue]
) -> HttpResponse:
    rules, max_wait = _rules(ex, step)
    subject = _subject(ex, endpoint_of(step, variables))
    ex.check_deadline()
    # await first, then add: `x += await f()` reads x before awaiting and loses concurrent updates
    waited = await ex.limiter.acquire(rules, subject, max_wait_s=max_wait)
    ex.counters.rate_limited_s += waited
    ex.check_deadline()
    ex.counters.requests += 1
    response = await ex.http.send(request)
    ex.count_response(response)
    await ex.limiter.observe(subject, response.status_code, response.headers)
    return response


class _Attempts:
    """Counts tries of one request and sleeps the backoff between them."""

    def __init__(self, ex: Execution, step: Step) -> None:
        self.ex = ex
        self.step = step
        self.attempt = 1

    @property
    def left(self) -> bool:
        return self.attempt < self.step.retry.max_attempts

    async def backoff(self, retry_after: str | None) -> None:
        ex = self.ex
        cap = min(
            self.step.retry.max_backoff_s or ex.limits.max_retry_backoff_s, ex.limits.max_retry_backoff_s
        )
        delay = retry_delay(
            self.attempt, retry_after=retry_after, cap_s=cap, max_hint_s=ex.limits.rate_limit_max_wait_s,
            now=ex.now(), rand=ex.rand,
        )  # fmt: skip
        self.attempt += 1
        await ex.sleep(delay)


async def fail(ex: Execution, step: Step, request: HttpRequest | None, response: HttpResponse | None,
                error: OrchidError, text: str | None = None) -> ReportedError:  # fmt: skip
    """Publish the failure on api-errors and return the error that ends the step."""
    reported = ReportedError(error, text)
    await ex.emit(step.path, request, response, error=reported.text)
    return reported


def _status_error(step: Step, response: HttpResponse, attempts: int, why: str) -> HttpStatusError:
    return HttpStatusError(
        f"step {step.path}: HTTP {response.status_code} from {response.url or 'the API'} {why}"
        f"{f' after {attempts} attempts' if attempts > 1 else ''}",
        status_code=response.status_code,
    )


async def fetch(
    ex: Execution, step: Step, render: Callable[[], tuple[HttpRequest, dict[str, JsonValue]]],
    first: tuple[HttpRequest, dict[str, JsonValue]],
) -> Exchange | None:  # fmt: skip
    """Send the step's request until it succeeds, is ignored (None) or fails (ReportedError)."""
    request, variables = first
    tries = _Attempts(ex, step)
    refreshed = False
    while True:
        auth_version = ex.auth_version
        try:
            response = await _send(ex, step, request, variables)
        except (RequestError, RateLimitExceededError) as exc:
            if exc.retryable and tries.left:
                await tries.backoff(None)
                continue
            tried = f" (after {tries.attempt} attempts)" if tries.attempt > 1 else ""
            text = f"step {step.path}: {exc.message}{tried}"
            raise await fail(ex, step, request, None, exc, text) from exc
        scope = {**variables, "response": response_variable(response)}
        verdict = _verdict(step, response, scope, refreshed)
        if verdict == "ok":
            return Exchange(request, response, scope)
        if verdict == "refresh":
            refreshed = True
            await ex.refresh_auth(auth_version)
            request, variables = render()  # the new token goes into the headers
        elif verdict == "retry" and tries.left:
            await tries.backoff(response.headers.get("retry-after"))
        else:
            await _conclude(ex, step, request, response, verdict, tries.attempt)
            return None


async def _conclude(ex: Execution, step: Step, request: HttpRequest, response: HttpResponse,
                    verdict: Verdict, attempts: int) -> None:  # fmt: skip
    """Publish an unusable response on api-errors; None to go on (ignore_on), else raise."""
    if verdict == "ignore":
        await ex.emit(step.path, request, response, error=f"HTTP {response.status_code} is in ignore_on")
        return None
    if verdict == "abort":
        error: OrchidError = ExecutionAbortedError(
            f"step {step.path}: HTTP {response.status_code} is in abort_on; execution aborted"
        )
    elif verdict == "retry":
        matched = step.retry_when is not None and 200 <= response.status_code < 300
        why = "still matches retry_when" if matched else "is retryable but retries ran out"
        error = _status_error(step, response, attempts, why)
    else:
        error = _status_error(step, response, attempts, "is not a success status")
    raise await fail(ex, step, request, response, error)
