"""The Redis Streams implementation of server.ports.JobQueue (TriggerPlan, CancelExecution and
RetryDlqEntry use it). The wire format is engine/queue.py's, shared with scheduler and worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.errors import DependencyUnavailableError, InvalidArgumentError
from engine.queue import JOB_TYPE, Envelope, QueueNames, publish_cancel, push_job

__all__ = ["RedisJobQueue", "envelope_from_job"]

_TRIGGERS = {"schedule": "schedule", "manual": "manual", "retry": "retry", "replay": "replay"}


def _current_trace() -> tuple[str, str]:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")


def envelope_from_job(job: Mapping[str, Any]) -> Envelope:
    """The stream envelope of a server.ports.execution_job() payload. The trace continues the
    execution's stored trace context, else the current span (the RPC's)."""
    kind = str(job.get("type", JOB_TYPE))
    if kind != JOB_TYPE:
        raise InvalidArgumentError(f"the job queue runs {JOB_TYPE} jobs, not {kind}")
    context = job.get("trace_context") or {}
    traceparent = str(context.get("traceparent", ""))
    tracestate = str(context.get("tracestate", ""))
    if not traceparent and trace.get_current_span().get_span_context().is_valid:
        traceparent, tracestate = _current_trace()
    return Envelope(
        job_id=str(job["execution_id"]),
        tenant_id=str(job["tenant_id"]),
        plan_key=str(job["plan_key"]),
        config_id=str(job.get("config_id") or ""),
        trigger=_TRIGGERS.get(str(job.get("trigger", "manual")), "manual"),  # type: ignore[arg-type]
        replay_of=str(job.get("replay_of") or ""),
        traceparent=traceparent,
        tracestate=tracestate,
    )


class RedisJobQueue:
    def __init__(self, redis: Redis, names: QueueNames | None = None) -> None:
        self._redis = redis
        self._names = names or QueueNames()

    async def enqueue(self, job: dict[str, Any]) -> str:
        """Add the job's first attempt to the stream. Idempotent: a job enqueued before (e.g. by
        the scheduler's sweep) returns "" and adds nothing."""
        envelope = envelope_from_job(job)
        try:
            entry_id = await push_job(self._redis, self._names, envelope)
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError(f"job queue unavailable: {type(exc).__name__}") from exc
        return entry_id.decode() if isinstance(entry_id, bytes) else (entry_id or "")

    async def request_cancel(self, tenant_id: str, execution_id: str) -> None:
        try:
            await publish_cancel(self._redis, self._names, tenant_id, execution_id)
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError(f"job queue unavailable: {type(exc).__name__}") from exc
