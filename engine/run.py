"""Run one plan execution: events, deadline, cancellation, and the outcome.

``run_plan`` never raises for anything a plan, an API or a sink can do wrong: every such problem
ends as an ExecutionOutcome with status failed/aborted and an error that names it. Only asyncio
cancellation of the calling task propagates (after a best-effort execution.completed event with
status cancelled); the ``cancel`` event is the cooperative way to stop, and returns an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from engine.context import ContextState
from engine.errors import ExecutionAbortedError, OrchidError, RateLimitExceededError
from engine.fanout import Scope
from engine.fetch import ReportedError
from engine.plan import Plan
from engine.ports import (
    AuthProvider,
    ExecutionEvent,
    ExecutionMeta,
    ExecutionOutcome,
    ExecutionStatus,
    HttpCaller,
    JsonValue,
    RateLimiter,
    ResponseSink,
)
from engine.state import Counters, Execution
from engine.step_runner import run_step
from settings.model import ExecutionLimits

__all__ = ["execution_sink", "run_plan"]

log = logging.getLogger(__name__)

# How long a cancelled execution may spend publishing its execution.completed event.
_CANCEL_GRACE_S = 1.0


def execution_sink(sink: ResponseSink) -> ResponseSink:
    """``sink.for_execution()`` when the sink has one (a view already returns itself), else the
    sink as it is."""
    for_execution = getattr(sink, "for_execution", None)
    if callable(for_execution):
        view = for_execution()
        return cast(ResponseSink, view)
    return sink


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(now: datetime) -> str:
    return now.isoformat().replace("+00:00", "Z")


async def run_plan(
    plan: Plan,
    *,
    meta: ExecutionMeta,
    config: Mapping[str, JsonValue],
    auth: AuthProvider,
    context: Mapping[str, JsonValue],
    http: HttpCaller,
    limiter: RateLimiter,
    sink: ResponseSink,
    limits: ExecutionLimits,
    secrets: Collection[str] = (),
    cancel: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> ExecutionOutcome:
    """Run ``plan`` once and report how it went. The caller persists ``outcome.context`` only when
    ``outcome.status == "success"`` (everything was emitted and flushed by then).

    A sink that offers ``for_execution()`` (engine.kafka_sink.KafkaSink) is used through that
    per-execution view: emission is pipelined, and the flush before success waits for, and fails
    on, this execution's own messages only."""
    started = clock()
    sink = execution_sink(sink)
    await _event(sink, meta, ExecutionEvent("execution.started", _timestamp(now())))
    ex: Execution | None = None
    ending = _Ending("failed", None)
    try:
        ex = Execution(
            plan, meta=meta, config=config, auth=auth,
            context=ContextState(context, max_field_bytes=limits.max_context_field_bytes,
                                 max_total_bytes=limits.max_context_total_bytes),
            http=http, limiter=limiter, sink=sink, limits=limits, secrets=secrets,
            clock=clock, now=now, sleep=sleep, rand=rand,
        )  # fmt: skip
        ending = await _run_cancellable(ex, cancel)
    except asyncio.CancelledError:
        await _completed_on_cancel(ex, meta, sink, started, clock, now)
        raise
    except OrchidError as exc:  # the initial context is over its limits
        ending = _Ending("failed", exc.message)
    outcome = ExecutionOutcome(
        status=ending.status,
        stats=(ex.counters if ex is not None else Counters()).stats((clock() - started) * 1000.0),
        error=ending.error,
        context=ex.context.snapshot() if ex is not None else dict(context),
        resume_after_s=ending.resume_after_s,
    )
    event = ExecutionEvent(
        "execution.completed", _timestamp(now()), outcome.status, outcome.stats, outcome.error
    )
    await _event(sink, meta, event)
    with contextlib.suppress(OrchidError):
        await sink.flush()
    return outcome


async def _event(sink: ResponseSink, meta: ExecutionMeta, event: ExecutionEvent) -> None:
    """Publish a lifecycle event; a broker problem is logged, never allowed to hide the outcome."""
    try:
        await sink.emit_event(meta, event)
    except OrchidError as exc:
        log.warning("could not publish %s for execution %s: %s", event.type, meta.execution_id, exc)


async def _completed_on_cancel(
    ex: Execution | None, meta: ExecutionMeta, sink: ResponseSink, started: float,
    clock: Callable[[], float], now: Callable[[], datetime],
) -> None:  # fmt: skip
    counters = ex.counters if ex is not None else Counters()
    stats = counters.stats((clock() - started) * 1000.0)
    event = ExecutionEvent(
        "execution.completed", _timestamp(now()), "cancelled", stats, "execution cancelled"
    )
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CANCEL_GRACE_S):
            await sink.emit_event(meta, event)
            await sink.flush()  # a pipelined sink has only enqueued it


async def _run_cancellable(ex: Execution, cancel: asyncio.Event | None) -> _Ending:
    """Run the execution; stop it as soon as ``cancel`` is set."""
    if cancel is None:
        return await _run_bounded(ex)
    body = asyncio.ensure_future(_run_bounded(ex))
    stopper = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait((body, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not body.done():
            body.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await body
    if body.cancelled():
        return _Ending("cancelled", "execution cancelled")
    return body.result()


@dataclass(frozen=True, slots=True)
class _Ending:
    status: ExecutionStatus
    error: str | None
    resume_after_s: float | None = None


def _ending_of(error: ReportedError) -> _Ending:
    cause = error.cause
    if isinstance(cause, ExecutionAbortedError):
        return _Ending("aborted", error.text)
    if isinstance(cause, RateLimitExceededError):
        return _Ending("rate_limited", error.text, cause.wait_s)
    return _Ending("failed", error.text)


async def _run_bounded(ex: Execution) -> _Ending:
    """Run within MAX_EXECUTION_TIME and classify how it ended."""
    try:
        async with asyncio.timeout(ex.limits.max_execution_time_s):
            await ex.load_auth()
            await run_step(ex, ex.plan.step, Scope())
            await ex.sink.flush()
    except TimeoutError:
        return _Ending("failed", ex.timeout_error().message)
    except ReportedError as exc:
        return _ending_of(exc)
    except OrchidError as exc:
        return _Ending("failed", exc.message)
    except Exception as exc:  # a bug, not bad input: still an outcome, never a crashed worker
        log.exception("execution %s failed unexpectedly", ex.meta.execution_id)
        return _Ending("failed", f"internal error: {type(exc).__name__}: {exc}")
    return _Ending("success", None)
