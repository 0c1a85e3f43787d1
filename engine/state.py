"""What one execution shares across its steps and fan-out workers: the ports, the live auth values
and context, the counters behind ExecutionStats, the message sequence and the deadline.

All mutation happens on one event loop without awaiting in the middle, so counters and the
sequence stay exact under any fan-out concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from engine.context import ContextState
from engine.errors import ExecutionTimeoutError
from engine.plan import Plan
from engine.ports import (
    AuthProvider,
    ExecutionMeta,
    ExecutionStats,
    HttpCaller,
    HttpRequest,
    HttpResponse,
    JsonValue,
    RateLimiter,
    RateLimitRule,
    RateLimitSubject,
    ResponseMessage,
    ResponseSink,
)
from engine.redact import Redactor, secret_strings
from engine.request_builder import full_url
from settings.model import ExecutionLimits

__all__ = ["Counters", "Execution", "count_records"]


def count_records(body: JsonValue) -> int:
    """Records in a body: the length of an array body, else of the first array field of an object
    body (the usual {"items": [...], "next": ...} page), else 1."""
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list):
                return len(value)
    return 1


def _trace_ids(traceparent: str) -> tuple[str, str]:
    """(trace_id, span_id) from a W3C traceparent "00-<trace>-<span>-<flags>"."""
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return parts[1], parts[2]
    return "", ""


@dataclass(slots=True)
class Counters:
    requests: int = 0
    records: int = 0
    bytes: int = 0
    messages: int = 0
    rate_limited_s: float = 0.0
    entity_counts: dict[str, int] = field(default_factory=dict)

    def stats(self, duration_ms: float) -> ExecutionStats:
        return ExecutionStats(
            requests=self.requests,
            records=self.records,
            bytes=self.bytes,
            messages=self.messages,
            duration_ms=duration_ms,
            rate_limited_seconds=self.rate_limited_s,
            entity_counts=dict(self.entity_counts),
        )


class Execution:
    """The shared state of one run_plan call."""

    def __init__(
        self,
        plan: Plan,
        *,
        meta: ExecutionMeta,
        config: Mapping[str, JsonValue],
        auth: AuthProvider,
        context: ContextState,
        http: HttpCaller,
        limiter: RateLimiter,
        sink: ResponseSink,
        limits: ExecutionLimits,
        secrets: Collection[str],
        clock: Callable[[], float],
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        rand: Callable[[], float],
    ) -> None:
        self.plan = plan
        self.meta = meta
        self.config: dict[str, JsonValue] = dict(config)
        self.context = context
        self.http = http
        self.limiter = limiter
        self.sink = sink
        self.limits = limits
        self.clock = clock
        self.now = now
        self.rand = rand
        self._sleep = sleep
        self._auth_provider = auth
        self._auth_lock = asyncio.Lock()
        self.auth: dict[str, JsonValue] = {}
        self.auth_version = 0
        self.redactor = Redactor(secrets)
        self.counters = Counters()
        self.sequence = 0
        self.started = clock()
        self.deadline = self.started + limits.max_execution_time_s
        self.trace_id, self.span_id = _trace_ids(meta.traceparent)
        # per-execution caches of engine.fetch: rate-limit rules by id(step), subjects by endpoint
        self.step_rules: dict[int, tuple[list[RateLimitRule], float]] = {}
        self.subjects: dict[str, RateLimitSubject] = {}

    # --- auth ---------------------------------------------------------------------------------

    async def load_auth(self) -> None:
        self._set_auth(await self._auth_provider.values())

    def _set_auth(self, values: Mapping[str, JsonValue]) -> None:
        self.auth = dict(values)
        self.auth_version += 1
        self.redactor.add(secret_strings(self.auth))

    async def refresh_auth(self, seen_version: int) -> None:
        """Refresh after a 401, once per stale token: when fifty fan-out workers hit the same
        expired token, the first refreshes and the rest reuse its result."""
        async with self._auth_lock:
            if self.auth_version == seen_version:
                self._set_auth(await self._auth_provider.values(refresh=True))

    # --- time ---------------------------------------------------------------------------------

    def check_deadline(self) -> None:
        if self.clock() >= self.deadline:
            raise self.timeout_error()

    def timeout_error(self) -> ExecutionTimeoutError:
        return ExecutionTimeoutError(
            f"execution exceeded MAX_EXECUTION_TIME of {self.limits.max_execution_time_s:g}s"
        )

    async def sleep(self, seconds: float) -> None:
        """Sleep, unless the sleep would run past the execution deadline: then fail now."""
        if self.clock() + seconds > self.deadline:
            raise self.timeout_error()
        await self._sleep(seconds)

    # --- emission -----------------------------------------------------------------------------

    def count_response(self, response: HttpResponse) -> None:
        self.counters.bytes += response.size

    async def emit(
        self,
        step_path: str,
        request: HttpRequest | None,
        response: HttpResponse | None,
        *,
        body: JsonValue = None,
        extracted: Mapping[str, JsonValue] | None = None,
        error: str | None = None,
        size: int | None = None,
    ) -> None:
        """Publish one message: to api-errors when ``error`` is given, else to api-responses."""
        self.sequence += 1
        redact = self.redactor
        if response is not None and body is None:
            body = response.body
        url = (
            response.url if response is not None and response.url else (full_url(request) if request else "")
        )
        message = ResponseMessage(
            step_path=step_path,
            timestamp=self.now().isoformat().replace("+00:00", "Z"),
            request_url=redact.url(url),
            request_method=request.method if request else "",
            request_headers=redact.headers(request.headers) if request else {},
            status_code=response.status_code if response else 0,
            response_body=body,
            response_headers=redact.headers(response.headers) if response else {},
            response_size=size if size is not None else (response.size if response else 0),
            duration_ms=response.duration_ms if response else 0.0,
            extracted_data=redact.value(dict(extracted or {})),
            sequence=self.sequence,
            trace_id=self.trace_id,
            span_id=self.span_id,
            error=redact.text(error) if error is not None else None,
        )
        await self.sink.emit_response(self.meta, message, error=error is not None)
        self.counters.messages += 1
        if error is None:
            records = count_records(body)
            self.counters.records += records
            counts = self.counters.entity_counts
            counts[step_path] = counts.get(step_path, 0) + records
