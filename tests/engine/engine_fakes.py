"""Small fakes of the engine's ports, for pure tests (no network, no real time)."""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from engine.plan import Plan
from engine.ports import (
    ExecutionEvent,
    ExecutionMeta,
    ExecutionOutcome,
    HttpRequest,
    HttpResponse,
    RateLimitRule,
    RateLimitSubject,
    ResponseMessage,
)
from engine.run import run_plan
from engine.validate import validate_plan
from settings.model import ExecutionLimits

META = ExecutionMeta(
    tenant_id="tenant-1",
    integration="acme",
    plan_key="plan",
    config_id="config-1",
    execution_id="exec-1",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)
EPOCH = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def response(
    body: Any = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    url: str = "",
    body_format: str = "json",
) -> HttpResponse:
    size = len(orjson.dumps(body)) if body_format == "json" else len(str(body))
    return HttpResponse(status, dict(headers or {}), body, size, 5.0, url, body_format)  # type: ignore[arg-type]


Handler = Callable[[HttpRequest], Awaitable[HttpResponse] | HttpResponse]


class FakeHttp:
    """Answers from a handler or a queue of responses/exceptions, and records every request."""

    def __init__(
        self, handler: Handler | None = None, *, queue: Sequence[HttpResponse | Exception] = ()
    ) -> None:
        self.handler = handler
        self.queue = list(queue)
        self.requests: list[HttpRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.handler is not None:
                result = self.handler(request)
                if inspect.isawaitable(result):
                    result = await result
                assert isinstance(result, HttpResponse)
                return result
            if not self.queue:
                raise AssertionError(f"unexpected request {request.method} {request.url}")
            item = self.queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        finally:
            self.in_flight -= 1

    def query(self, index: int) -> dict[str, str]:
        return dict(self.requests[index].params)


@dataclass
class RecordingSink:
    messages: list[tuple[ResponseMessage, bool]] = field(default_factory=list)
    events: list[ExecutionEvent] = field(default_factory=list)
    flushes: int = 0
    fail_with: Exception | None = None

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.messages.append((message, error))

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        self.events.append(event)

    async def flush(self) -> None:
        self.flushes += 1

    @property
    def responses(self) -> list[ResponseMessage]:
        return [m for m, error in self.messages if not error]

    @property
    def errors(self) -> list[ResponseMessage]:
        return [m for m, error in self.messages if error]


class FakeAuth:
    """Hands out token-1, then token-2 after a refresh, and so on."""

    def __init__(self, **extra: Any) -> None:
        self.version = 1
        self.refreshes = 0
        self.extra = extra

    async def values(self, *, refresh: bool = False) -> Mapping[str, Any]:
        if refresh:
            self.refreshes += 1
            self.version += 1
        return {"token": f"token-{self.version}", **self.extra}


@dataclass
class RecordingLimiter:
    acquired: list[tuple[tuple[RateLimitRule, ...], RateLimitSubject, float]] = field(default_factory=list)
    observed: list[tuple[int, Mapping[str, str]]] = field(default_factory=list)
    wait: float = 0.0
    raise_with: Exception | None = None

    async def acquire(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject, *, max_wait_s: float
    ) -> float:
        if self.raise_with is not None:
            raise self.raise_with
        self.acquired.append((tuple(rules), subject, max_wait_s))
        return self.wait

    async def observe(self, subject: RateLimitSubject, status_code: int, headers: Mapping[str, str]) -> None:
        self.observed.append((status_code, headers))


class VirtualTime:
    """Virtual monotonic time: ``sleep`` parks the caller until ``drive`` advances the clock to its
    deadline, which it does only once every task is idle. Tests of backoff and rate limits thus
    take no real time and wake sleepers in exactly the right order."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH.timestamp() + self.now

    def datetime(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._seq), future))
        await future

    async def _settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def drive(self, awaitable: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(awaitable)
        try:
            await self._advance(task)
        except asyncio.CancelledError:
            task.cancel()  # pass the caller's cancellation on to what it drives
            await asyncio.gather(task, return_exceptions=True)
            raise
        return task.result()

    async def _advance(self, task: asyncio.Future[Any]) -> None:
        while not task.done():
            await self._settle()
            if task.done():
                break
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # cancelled sleeps
            if not self._sleepers:
                await asyncio.sleep(0.001)  # waiting on something real (an event set by the test)
                continue
            deadline, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            future.set_result(None)


def limits(**overrides: Any) -> ExecutionLimits:
    return ExecutionLimits(**overrides)


def plan_of(step: dict[str, Any], **plan_fields: Any) -> Plan:
    return validate_plan({"key": "plan", "integration": "acme", "step": step, **plan_fields})


@dataclass
class Harness:
    """Runs a plan against the fakes, with virtual time."""

    http: FakeHttp
    sink: RecordingSink = field(default_factory=RecordingSink)
    auth: FakeAuth = field(default_factory=FakeAuth)
    limiter: Any = field(default_factory=RecordingLimiter)
    time: VirtualTime = field(default_factory=VirtualTime)
    config: dict[str, Any] = field(default_factory=lambda: {"base_url": "https://api.example.com"})
    context: dict[str, Any] = field(default_factory=dict)
    limits: ExecutionLimits = field(default_factory=ExecutionLimits)
    secrets: tuple[str, ...] = ()
    rand: Callable[[], float] = lambda: 0.5

    async def run(self, plan: Plan | dict[str, Any], cancel: asyncio.Event | None = None) -> ExecutionOutcome:
        if isinstance(plan, dict):
            plan = plan_of(plan) if "key" not in plan else validate_plan(plan)
        return await self.time.drive(
            run_plan(
                plan,
                meta=META,
                config=self.config,
                auth=self.auth,
                context=self.context,
                http=self.http,
                limiter=self.limiter,
                sink=self.sink,
                limits=self.limits,
                secrets=self.secrets,
                cancel=cancel,
                clock=self.time.clock,
                now=self.time.datetime,
                sleep=self.time.sleep,
                rand=self.rand,
            )
        )


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
