"""One job, start to finish: the handler the StreamConsumer calls for each delivery.

1. Start the attempt (execution RUNNING, attempt row N opened; a still-open earlier attempt is
   closed as worker_lost) and load plan, config and context - one SQL statement
   (jobs_repo.start_run), which also drops a stale delivery (an attempt lower than the one the
   execution is at).
2. Run the engine, with a cancel event the CancelWatcher sets, inside the execution's span
   (continuing the traceparent of whoever enqueued it), publishing through the sink's
   per-execution view (its flush waits for this execution's messages only).
3. Store the outcome - status, attempt, statistics, context (on success only), and either the
   retry or the DLQ entry - atomically, retried while PostgreSQL is down: a finish or a retry is
   one statement (jobs_repo.finish_run / requeue_run), a dead letter one transaction. The
   attempt row is the fence: if another worker took the job over meanwhile, nothing is written.
4. Park a retry in the delayed set, then return, and the consumer acknowledges the entry.

The hot path runs on raw asyncpg connections of the pool (prepared statements, no ORM); the
rare paths (dead letters, non-final outcomes) keep the repositories' ORM transactions.

Cancellation of this task (drain deadline) passes through: the entry stays pending and the next
worker's start_attempt closes this attempt as worker_lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from opentelemetry import trace
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.errors import PlanValidationError
from engine.plan import Plan
from engine.ports import (
    AuthProvider,
    ExecutionMeta,
    ExecutionOutcome,
    HttpCaller,
    JsonValue,
    RateLimiter,
    ResponseSink,
)
from engine.queue import Envelope, QueueNames, encode_envelope, push_delayed
from engine.run import run_plan
from engine.validate import validate_plan
from settings.model import ExecutionLimits
from store import dlq_repo, executions_repo, jobs_repo, statistics_repo
from store.crypto import SecretBox
from store.records import FINAL_STATUSES, ErrorInfo, ExecutionRecord, NewDlqEntry, RunTotals
from worker import metrics
from worker.cancel import CancelWatcher
from worker.consumer import Delivery
from worker.dbretry import in_transaction, on_connection
from worker.observability import current_traceparent, job_log_context, parent_context
from worker.outcomes import DeadLetter, Decision, Finish, Retry, decide, error_for

__all__ = ["Adapters", "JobHandler", "NoAuth", "RunScope", "ScopeFactory"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("orchid.worker")

# A job whose workers vanished this many times is dead-lettered instead of delivered again.
MAX_DELIVERIES = 5
_PLAN_CACHE_SIZE = 1024


class NoAuth:
    """The AuthProvider of a plan without an auth flow."""

    async def values(self, *, refresh: bool = False) -> Mapping[str, JsonValue]:
        return {}


AuthFactory = Callable[[ExecutionRecord, jobs_repo.RunInputs], AuthProvider]


class RunScope(Protocol):
    """One execution's own limiter and auth provider (worker.fleet); closed after the run."""

    @property
    def limiter(self) -> RateLimiter: ...

    @property
    def auth(self) -> AuthProvider: ...

    async def aclose(self) -> None: ...


ScopeFactory = Callable[[ExecutionRecord, jobs_repo.RunInputs, ExecutionMeta], RunScope]


def _no_auth(execution: ExecutionRecord, inputs: jobs_repo.RunInputs) -> AuthProvider:
    return NoAuth()


@dataclass(frozen=True, slots=True)
class Adapters:
    """The process-wide adapters every run shares."""

    http: HttpCaller
    limiter: RateLimiter
    sink: ResponseSink
    auth: AuthFactory = _no_auth
    # When given, each run gets its own limiter and auth provider from it (``limiter`` and
    # ``auth`` are then unused).
    scopes: ScopeFactory | None = None


@dataclass(frozen=True, slots=True)
class _Started:
    execution: ExecutionRecord
    inputs: jobs_repo.RunInputs
    lost_deliveries: int

    @property
    def attempt_number(self) -> int:
        return self.execution.attempt_count


class JobHandler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        names: QueueNames,
        adapters: Adapters,
        cancels: CancelWatcher,
        *,
        worker_name: str,
        limits: ExecutionLimits,
        max_attempts: int,
        secrets: SecretBox,
        max_deliveries: int = MAX_DELIVERIES,
        rand: Callable[[], float] = random.random,
        engine: AsyncEngine | None = None,
    ) -> None:
        self._sessions = sessions
        # the hot path's raw connections come from the sessions' own engine unless given one
        self._engine: AsyncEngine = engine if engine is not None else sessions.kw["bind"]
        self._redis = redis
        self._names = names
        self._adapters = adapters
        self._cancels = cancels
        self._worker = worker_name
        self._limits = limits
        self._max_attempts = max_attempts
        self._secrets = secrets
        self._max_deliveries = max_deliveries
        self._rand = rand
        self._plans: dict[tuple[str, UUID, datetime], Plan] = {}

    async def __call__(self, delivery: Delivery) -> None:
        envelope = delivery.envelope
        with (
            job_log_context(envelope.tenant_id, envelope.job_id),
            _tracer.start_as_current_span(
                "execute plan",
                context=parent_context(envelope.traceparent, envelope.tracestate),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "orchid.tenant_id": envelope.tenant_id,
                    "orchid.execution_id": envelope.job_id,
                    "orchid.plan_key": envelope.plan_key,
                    "orchid.attempt": envelope.attempt,
                },
            ),
        ):
            await self._handle(envelope)

    async def _handle(self, envelope: Envelope) -> None:
        started = await on_connection(self._engine, "start attempt", lambda conn: self._start(conn, envelope))
        if started is None:
            log.info("execution %s is final, gone, or past attempt %d; acknowledging",
                     envelope.job_id, envelope.attempt)  # fmt: skip
            return
        metrics.JOBS_STARTED.inc()
        log.debug("attempt %d of execution %s started", started.attempt_number, envelope.job_id)
        problem = self._unrunnable(started)
        if problem is not None:
            reason, error = problem
            await self._store(envelope, started, "failed", error, {}, {}, DeadLetter(reason))
            return
        plan_or_error = self._plan(started)
        if isinstance(plan_or_error, ErrorInfo):
            await self._store(
                envelope, started, "failed", plan_or_error, {}, {}, DeadLetter("invalid_definition")
            )
            return
        began = time.perf_counter()
        outcome = await self._run(envelope, started, plan_or_error)
        metrics.EXECUTION_SECONDS.labels(outcome.status).observe(time.perf_counter() - began)
        decision = decide(
            outcome.status,
            attempt=envelope.attempt,
            max_attempts=self._max_attempts,
            now=datetime.now(UTC),
            backoff_cap_s=self._limits.max_retry_backoff_s,
            rand=self._rand,
        )
        stats = _stats_json(outcome)
        failure = error_for(outcome.status, outcome.error)
        await self._store(envelope, started, outcome.status, failure, stats, outcome.context, decision)

    # --- steps ----------------------------------------------------------------------------------

    async def _start(self, conn: Any, envelope: Envelope) -> _Started | None:
        """None when there is nothing to run: the execution is final (e.g. cancelled while
        queued), deleted, another tenant's, or this is a stale delivery of an earlier attempt."""
        run = await jobs_repo.start_run(
            conn,
            envelope.tenant_id,
            UUID(envelope.job_id),
            attempt=envelope.attempt,
            worker=self._worker,
            secrets=self._secrets,
        )
        if run is None:
            return None
        return _Started(run.execution, run.inputs, run.lost_deliveries)

    def _unrunnable(self, started: _Started) -> tuple[Any, ErrorInfo] | None:
        if started.lost_deliveries >= self._max_deliveries:
            message = f"the job's worker vanished {started.lost_deliveries} times"
            return "deliveries_exhausted", ErrorInfo(code="deliveries_exhausted", message=message)
        if started.inputs.plan_definition is None:
            message = f"plan {started.execution.plan_key!r} no longer exists"
            return "invalid_definition", ErrorInfo(code="plan_not_found", message=message)
        return None

    def _plan(self, started: _Started) -> Plan | ErrorInfo:
        inputs = started.inputs
        assert inputs.plan_id is not None and inputs.plan_updated_at is not None
        assert inputs.plan_definition is not None
        key = (started.execution.tenant_id, inputs.plan_id, inputs.plan_updated_at)
        plan = self._plans.get(key)
        if plan is None:
            try:
                plan = validate_plan(inputs.plan_definition, limits=self._limits)
            except PlanValidationError as exc:
                return ErrorInfo(code="invalid_definition", message=exc.message)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    async def _run(self, envelope: Envelope, started: _Started, plan: Plan) -> ExecutionOutcome:
        execution = started.execution
        traceparent, tracestate = current_traceparent()
        meta = ExecutionMeta(
            tenant_id=execution.tenant_id,
            integration=execution.integration or (plan_integration(plan) or ""),
            plan_key=execution.plan_key,
            config_id=str(execution.config_id or ""),
            execution_id=str(execution.id),
            traceparent=traceparent,
            tracestate=tracestate,
        )
        adapters = self._adapters
        scope = adapters.scopes(execution, started.inputs, meta) if adapters.scopes is not None else None
        try:
            with self._cancels.watch(execution.tenant_id, str(execution.id)) as cancel:
                return await run_plan(
                    plan,
                    meta=meta,
                    config=started.inputs.config_values,
                    auth=scope.auth if scope is not None else adapters.auth(execution, started.inputs),
                    context=started.inputs.context,
                    http=adapters.http,
                    limiter=scope.limiter if scope is not None else adapters.limiter,
                    sink=_execution_view(adapters.sink),
                    limits=self._limits,
                    secrets=started.inputs.secrets,
                    cancel=cancel,
                )
        finally:
            if scope is not None:
                await asyncio.shield(scope.aclose())

    async def _store(
        self,
        envelope: Envelope,
        started: _Started,
        status: Any,
        error: ErrorInfo | None,
        stats: dict[str, Any],
        context: Mapping[str, JsonValue],
        decision: Decision,
    ) -> None:
        async def write(session: AsyncSession) -> bool:
            return await self._write_outcome(
                session, envelope, started, status, error, stats, context, decision
            )

        async def write_fast(conn: Any) -> bool:
            return await self._write_outcome_fast(conn, started, status, error, stats, context, decision)

        fast = isinstance(decision, Retry) or (
            isinstance(decision, Finish) and decision.status in FINAL_STATUSES
        )
        # Shielded: the outcome is already emitted; do not tear its bookkeeping in half.
        if fast:
            stored = await asyncio.shield(on_connection(self._engine, "record outcome", write_fast))
        else:
            stored = await asyncio.shield(in_transaction(self._sessions, "record outcome", write))
        if not stored:
            log.warning("attempt %d of %s was taken over or cancelled; outcome discarded",
                        started.attempt_number, envelope.job_id)  # fmt: skip
            return
        self._count(status, decision)
        if isinstance(decision, Retry):
            retry = envelope.next_attempt(now=datetime.now(UTC))
            await push_delayed(self._redis, self._names, retry, due_at=decision.due_at)
            reason = error.message if error else ""
            log.warning("execution %s failed (attempt %d), retry at %s: %s",
                        envelope.job_id, envelope.attempt, decision.due_at.isoformat(), reason)  # fmt: skip
        else:
            log.info("execution %s finished: %s", envelope.job_id,
                     decision.reason if isinstance(decision, DeadLetter) else status)  # fmt: skip

    async def _write_outcome_fast(
        self,
        conn: Any,
        started: _Started,
        status: Any,
        error: ErrorInfo | None,
        stats: dict[str, Any],
        context: Mapping[str, JsonValue],
        decision: Decision,
    ) -> bool:
        """A finish or a retry: one statement each (see jobs_repo.finish_run / requeue_run)."""
        execution = started.execution
        if isinstance(decision, Retry):
            return await jobs_repo.requeue_run(
                conn, execution.tenant_id, execution.id, attempt=started.attempt_number, outcome=status,
                error=error, stats=stats, resume_at=decision.due_at,
            )  # fmt: skip
        assert isinstance(decision, Finish)
        return await jobs_repo.finish_run(
            conn, execution.tenant_id, execution.id, attempt=started.attempt_number, outcome=status,
            status=decision.status, plan_key=execution.plan_key, plan_id=started.inputs.plan_id,
            config_id=execution.config_id, error=error, stats=stats,
            context=dict(context) if decision.status == "success" else None,
        )  # fmt: skip

    async def _write_outcome(
        self,
        session: AsyncSession,
        envelope: Envelope,
        started: _Started,
        status: Any,
        error: ErrorInfo | None,
        stats: dict[str, Any],
        context: Mapping[str, JsonValue],
        decision: Decision,
    ) -> bool:
        execution = started.execution
        tenant, execution_id = execution.tenant_id, execution.id
        if not await jobs_repo.close_attempt(
            session, tenant, execution_id, started.attempt_number, status, error
        ):
            return False
        if isinstance(decision, Retry):
            return await jobs_repo.requeue_for_retry(
                session, tenant, execution_id, resume_at=decision.due_at, error=error, stats=stats
            )
        final = "failed" if isinstance(decision, DeadLetter) else decision.status
        if not await executions_repo.finish(
            session, tenant, execution_id, status=final, error=error, stats=stats
        ):
            return False
        if final == "success" and started.inputs.plan_id is not None and execution.config_id is not None:
            await statistics_repo.put_context(
                session, tenant, started.inputs.plan_id, execution.config_id, dict(context)
            )
        if isinstance(decision, DeadLetter):
            timeline = await executions_repo.get(session, tenant, execution_id)
            await dlq_repo.add(
                session,
                tenant,
                NewDlqEntry(
                    execution_id=execution_id,
                    plan_key=execution.plan_key,
                    reason=decision.reason,
                    config_id=execution.config_id,
                    last_error=error,
                    attempts=timeline.attempts,
                    job=dict(encode_envelope(envelope)),
                ),
            )
        if execution.config_id is not None:
            # Last: every run of a pair updates the same statistics row, whose lock lasts until commit.
            totals = RunTotals(
                status=final,
                execution_id=execution_id,
                api_calls=int(stats.get("requests", 0)),
                records=int(stats.get("records", 0)),
                bytes=int(stats.get("bytes", 0)),
                error=error,
            )
            await statistics_repo.record_run(session, tenant, execution.plan_key, execution.config_id, totals)
        return True

    @staticmethod
    def _count(status: str, decision: Decision) -> None:
        if status == "success":
            metrics.JOBS_SUCCEEDED.inc()
        else:
            metrics.JOBS_FAILED.labels(status).inc()
        if isinstance(decision, Retry):
            metrics.JOBS_RETRIED.inc()
        elif isinstance(decision, DeadLetter):
            metrics.DEAD_LETTERED.labels(decision.reason).inc()


def _execution_view(sink: ResponseSink) -> ResponseSink:
    """The sink's per-execution view (KafkaSink.for_execution: pipelined sends, a flush that
    waits for this execution's messages only), or the sink itself if it has none."""
    view = getattr(sink, "for_execution", None)
    return view() if callable(view) else sink


def plan_integration(plan: Plan) -> str | None:
    value = getattr(plan, "integration", None)
    return value if isinstance(value, str) else None


def _stats_json(outcome: ExecutionOutcome) -> dict[str, Any]:
    stats = outcome.stats
    return {
        "requests": stats.requests,
        "records": stats.records,
        "bytes": stats.bytes,
        "messages": stats.messages,
        "duration_ms": round(stats.duration_ms, 3),
        "rate_limited_seconds": round(stats.rate_limited_seconds, 3),
        "entity_counts": dict(stats.entity_counts),
    }
