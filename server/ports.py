"""What the resource services need from the job queue (Redis Streams, wired by the
worker/scheduler issue). With no queue, TriggerPlan and RetryDlqEntry still create the QUEUED
execution rows; the scheduler's sweep enqueues executions whose ``enqueued_at`` is empty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store import executions_repo
from store.records import ExecutionRecord

__all__ = ["JobQueue", "enqueue_executions", "execution_job"]


class JobQueue(Protocol):
    async def enqueue(self, job: dict[str, Any]) -> str:
        """Add one job to the stream; return its entry id. Raises DependencyUnavailableError
        when the queue cannot be reached."""
        ...

    async def request_cancel(self, tenant_id: str, execution_id: str) -> None:
        """Tell the worker running ``execution_id`` (if any) to stop it."""
        ...


def execution_job(execution: ExecutionRecord) -> dict[str, Any]:
    """The job payload of an execution: enough for a worker to load everything else."""
    return {
        "type": "plan_execution" if execution.kind == "plan" else "auth_execution",
        "tenant_id": execution.tenant_id,
        "execution_id": str(execution.id),
        "plan_key": execution.plan_key,
        "plan_id": str(execution.plan_id) if execution.plan_id else "",
        "config_id": str(execution.config_id) if execution.config_id else "",
        "trigger": execution.trigger,
        "trace_context": dict(execution.trace_context),
    }


async def enqueue_executions(
    queue: JobQueue | None,
    sessions: async_sessionmaker[AsyncSession],
    executions: Sequence[ExecutionRecord],
) -> None:
    """After the commit that created them, hand queued, not yet enqueued executions to the
    queue and stamp ``enqueued_at``. A crash in between leaves them for the scheduler's sweep."""
    if queue is None:
        return
    pending = [e for e in executions if e.status == "queued" and e.enqueued_at is None]
    for execution in pending:
        await queue.enqueue(execution_job(execution))
    if pending:
        async with sessions.begin() as session:
            await executions_repo.mark_enqueued(session, pending[0].tenant_id, [e.id for e in pending])
