"""Executions and their attempt timelines: what the API reads, and what the worker and
scheduler write.

Status changes are single conditional UPDATEs (``WHERE status IN (...)``), so a cancelled
execution is never flipped back to running or success by a late worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Text, and_, cast, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import PreconditionFailedError
from store.access import raise_missing
from store.pagination import decode_token, encode_token, page_size
from store.records import (
    FINAL_STATUSES,
    AttemptOutcome,
    AttemptRecord,
    ErrorInfo,
    ExecutionRecord,
    ExecutionStatus,
    NewExecution,
    Page,
    PlanRecord,
)
from store.tables import Execution, ExecutionAttempt

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "cancel",
    "create",
    "create_manual_runs",
    "finish",
    "finish_attempt",
    "get",
    "list_children",
    "list_page",
    "list_resumable",
    "mark_enqueued",
    "park_rate_limited",
    "start_attempt",
]

IDEMPOTENCY_WINDOW = timedelta(hours=24)
RUNNABLE = ("queued", "rate_limited", "running")
Json = dict[str, Any]


def _attempt(row: ExecutionAttempt) -> AttemptRecord:
    return AttemptRecord(
        attempt=row.attempt,
        worker=row.worker,
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=row.outcome,  # type: ignore[arg-type]
        error=ErrorInfo.from_json(row.error),
    )


def _record(row: Execution, attempts: Sequence[AttemptRecord] = ()) -> ExecutionRecord:
    return ExecutionRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        plan_key=row.plan_key,
        plan_id=row.plan_id,
        config_id=row.config_id,
        integration=row.integration,
        auth_flow_id=row.auth_flow_id,
        parent_id=row.parent_id,
        replay_of=row.replay_of,
        step_path=row.step_path,
        kind=row.kind,  # type: ignore[arg-type]
        trigger=row.trigger,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        resume_at=row.resume_at,
        error=ErrorInfo.from_json(row.error),
        stats=row.stats,
        idempotency_key=row.idempotency_key,
        trace_context=row.trace_context,
        cancel_requested=row.cancel_requested,
        attempt_count=row.attempts,
        created_at=row.created_at,
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=tuple(attempts),
    )


async def _with_attempts(
    session: AsyncSession, tenant_id: str, rows: Sequence[Execution]
) -> list[ExecutionRecord]:
    if not rows:
        return []
    found = await session.scalars(
        select(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id.in_([r.id for r in rows]),
        )
        .order_by(ExecutionAttempt.execution_id, ExecutionAttempt.attempt)
    )
    by_execution: dict[UUID, list[AttemptRecord]] = {}
    for attempt in found:
        by_execution.setdefault(attempt.execution_id, []).append(_attempt(attempt))
    return [_record(r, by_execution.get(r.id, ())) for r in rows]


def _values(tenant_id: str, new: NewExecution) -> Json:
    return {
        "tenant_id": tenant_id,
        "plan_key": new.plan_key,
        "plan_id": new.plan_id,
        "config_id": new.config_id,
        "integration": new.integration,
        "kind": new.kind,
        "trigger": new.trigger,
        "auth_flow_id": new.auth_flow_id,
        "parent_id": new.parent_id,
        "replay_of": new.replay_of,
        "step_path": new.step_path,
        "idempotency_key": new.idempotency_key,
        "trace_context": new.trace_context,
        "resume_at": new.resume_at,
    }


async def create(session: AsyncSession, tenant_id: str, new: NewExecution) -> tuple[ExecutionRecord, bool]:
    """Queue a new execution. With an idempotency key already used by the tenant, return the
    existing execution and False instead (no error, no second row)."""
    statement = insert(Execution).values(**_values(tenant_id, new))
    if new.idempotency_key is not None:
        statement = statement.on_conflict_do_nothing(
            index_elements=[Execution.tenant_id, Execution.idempotency_key],
            index_where=Execution.idempotency_key.is_not(None),
        )
    row = await session.scalar(statement.returning(Execution))
    if row is not None:
        return _record(row), True
    existing = await session.scalar(
        select(Execution).where(
            Execution.tenant_id == tenant_id, Execution.idempotency_key == new.idempotency_key
        )
    )
    assert existing is not None
    return (await _with_attempts(session, tenant_id, [existing]))[0], False


def _manual_key(key: str, config_id: UUID | None) -> str:
    return key if config_id is None else f"{key}:{config_id}"


async def create_manual_runs(
    session: AsyncSession,
    tenant_id: str,
    plan: PlanRecord,
    config_ids: Sequence[UUID | None],
    *,
    idempotency_key: str | None = None,
    trace_context: Json | None = None,
    now: datetime | None = None,
) -> tuple[list[ExecutionRecord], bool]:
    """Queue one manual execution of ``plan`` per config. A repeated idempotency key (within 24
    hours, same plan) returns the executions of the first trigger and True ("deduplicated").

    Each execution stores ``<key>:<config_id>`` (or the bare key without a config), which keeps
    the per-tenant unique index on ``idempotency_key``."""
    if idempotency_key:
        earlier = list(
            await session.scalars(
                select(Execution)
                .where(
                    Execution.tenant_id == tenant_id,
                    Execution.plan_key == plan.key,
                    Execution.trigger == "manual",
                    or_(
                        and_(Execution.config_id.is_(None), Execution.idempotency_key == idempotency_key),
                        Execution.idempotency_key
                        == func.concat(idempotency_key, ":", cast(Execution.config_id, Text)),
                    ),
                )
                .order_by(Execution.created_at, Execution.id)
            )
        )
        current = now or await session.scalar(select(func.now()))
        assert current is not None
        if earlier and all(r.created_at > current - IDEMPOTENCY_WINDOW for r in earlier):
            return await _with_attempts(session, tenant_id, earlier), True
        if earlier:  # expired: free the key for this trigger
            await session.execute(
                update(Execution)
                .where(Execution.tenant_id == tenant_id, Execution.id.in_([r.id for r in earlier]))
                .values(idempotency_key=None)
            )
    created = []
    for config_id in config_ids:
        record, _ = await create(
            session,
            tenant_id,
            NewExecution(
                plan_key=plan.key,
                plan_id=plan.id,
                config_id=config_id,
                integration=plan.integration_name or "",
                trigger="manual",
                idempotency_key=_manual_key(idempotency_key, config_id) if idempotency_key else None,
                trace_context=trace_context or {},
            ),
        )
        created.append(record)
    return created, False


async def _row(session: AsyncSession, tenant_id: str, execution_id: UUID, *, lock: bool = False) -> Execution:
    query = select(Execution).where(Execution.tenant_id == tenant_id, Execution.id == execution_id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        await raise_missing(session, tenant_id, Execution.id, execution_id, "execution")
    return row


async def get(session: AsyncSession, tenant_id: str, execution_id: UUID) -> ExecutionRecord:
    """One execution with its attempt timeline."""
    row = await _row(session, tenant_id, execution_id)
    return (await _with_attempts(session, tenant_id, [row]))[0]


async def list_page(
    session: AsyncSession,
    tenant_id: str,
    *,
    plan_key: str | None = None,
    status: ExecutionStatus | None = None,
    config_id: UUID | None = None,
    size: int = 0,
    token: str = "",
) -> Page[ExecutionRecord]:
    """Top-level executions, newest first (keyset on (created_at, id) descending)."""
    limit = page_size(size)
    query = select(Execution).where(Execution.tenant_id == tenant_id, Execution.parent_id.is_(None))
    if plan_key:
        query = query.where(Execution.plan_key == plan_key)
    if status:
        query = query.where(Execution.status == status)
    if config_id is not None:
        query = query.where(Execution.config_id == config_id)
    after = decode_token(token, [datetime, UUID])
    if after is not None:
        query = query.where(tuple_(Execution.created_at, Execution.id) < tuple_(*after))
    query = query.order_by(Execution.created_at.desc(), Execution.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    next_token = encode_token([rows[limit - 1].created_at, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(await _with_attempts(session, tenant_id, rows[:limit])), next_token)


async def list_children(
    session: AsyncSession, tenant_id: str, parent_id: UUID, *, size: int = 0, token: str = ""
) -> Page[ExecutionRecord]:
    """Children of an execution, oldest first (keyset on (created_at, id))."""
    await _row(session, tenant_id, parent_id)
    limit = page_size(size)
    query = select(Execution).where(Execution.tenant_id == tenant_id, Execution.parent_id == parent_id)
    after = decode_token(token, [datetime, UUID])
    if after is not None:
        query = query.where(tuple_(Execution.created_at, Execution.id) > tuple_(*after))
    rows = list(await session.scalars(query.order_by(Execution.created_at, Execution.id).limit(limit + 1)))
    next_token = encode_token([rows[limit - 1].created_at, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(await _with_attempts(session, tenant_id, rows[:limit])), next_token)


async def cancel(
    session: AsyncSession, tenant_id: str, execution_id: UUID, reason: str = ""
) -> ExecutionRecord:
    """Cancel a queued, running or rate-limited execution and its descendants. The row turns
    CANCELLED at once with ``cancel_requested`` set; a worker still running it is told through the
    queue (the caller's job) and its late status writes are ignored."""
    row = await _row(session, tenant_id, execution_id, lock=True)
    if row.status in FINAL_STATUSES:
        raise PreconditionFailedError(f"execution {execution_id} already finished ({row.status})")
    error = ErrorInfo(code="cancelled", message=reason or "cancelled by request").to_json()
    ids = [execution_id]
    frontier = [execution_id]
    while frontier:  # descendants, level by level
        frontier = list(
            await session.scalars(
                select(Execution.id).where(
                    Execution.tenant_id == tenant_id, Execution.parent_id.in_(frontier)
                )
            )
        )
        ids.extend(frontier)
    await session.execute(
        update(Execution)
        .where(Execution.tenant_id == tenant_id, Execution.id.in_(ids), Execution.status.in_(RUNNABLE))
        .values(status="cancelled", cancel_requested=True, error=error, finished_at=func.now())
    )
    await session.execute(
        update(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id.in_(ids),
            ExecutionAttempt.outcome == "running",
        )
        .values(outcome="cancelled", finished_at=func.now())
    )
    return await get(session, tenant_id, execution_id)


async def mark_enqueued(session: AsyncSession, tenant_id: str, execution_ids: Sequence[UUID]) -> None:
    await session.execute(
        update(Execution)
        .where(Execution.tenant_id == tenant_id, Execution.id.in_(list(execution_ids)))
        .values(enqueued_at=func.now())
    )


# --- Worker side ------------------------------------------------------------------------------


async def start_attempt(
    session: AsyncSession, tenant_id: str, execution_id: UUID, *, worker: str
) -> ExecutionRecord | None:
    """Mark the execution running and open attempt N+1. A still-open earlier attempt is closed as
    WORKER_LOST (its worker vanished and the job was reclaimed). Returns None when the execution
    is final (e.g. cancelled while queued): the worker must skip it."""
    row = await session.scalar(
        update(Execution)
        .where(Execution.tenant_id == tenant_id, Execution.id == execution_id, Execution.status.in_(RUNNABLE))
        .values(
            status="running",
            attempts=Execution.attempts + 1,
            started_at=func.coalesce(Execution.started_at, func.now()),
            resume_at=None,
        )
        .returning(Execution)
        .execution_options(populate_existing=True)
    )
    if row is None:
        await _row(session, tenant_id, execution_id)  # 403/404 when it is not the tenant's
        return None
    await session.execute(
        update(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id == execution_id,
            ExecutionAttempt.outcome == "running",
        )
        .values(
            outcome="worker_lost",
            finished_at=func.now(),
            error=ErrorInfo(code="worker_lost", message="the worker stopped responding").to_json(),
        )
    )
    session.add(
        ExecutionAttempt(tenant_id=tenant_id, execution_id=execution_id, attempt=row.attempts, worker=worker)
    )
    await session.flush()
    return await get(session, tenant_id, execution_id)


async def finish_attempt(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    attempt: int,
    outcome: AttemptOutcome,
    error: ErrorInfo | None = None,
) -> None:
    await session.execute(
        update(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id == execution_id,
            ExecutionAttempt.attempt == attempt,
        )
        .values(outcome=outcome, finished_at=func.now(), error=error.to_json() if error else None)
    )


async def finish(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    *,
    status: ExecutionStatus,
    error: ErrorInfo | None = None,
    stats: Json | None = None,
) -> bool:
    """Record a final status. False when the execution was already final (e.g. cancelled)."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status} is not a final status")
    values: Json = {"status": status, "finished_at": func.now(), "error": error.to_json() if error else None}
    if stats is not None:
        values["stats"] = stats
    result = await session.execute(
        update(Execution)
        .where(Execution.tenant_id == tenant_id, Execution.id == execution_id, Execution.status.in_(RUNNABLE))
        .values(**values)
        .returning(Execution.id)
    )
    return result.first() is not None


async def park_rate_limited(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    *,
    resume_at: datetime,
    stats: Json | None = None,
) -> bool:
    """Release a running execution until ``resume_at`` (status RATE_LIMITED)."""
    values: Json = {"status": "rate_limited", "resume_at": resume_at}
    if stats is not None:
        values["stats"] = stats
    result = await session.execute(
        update(Execution)
        .where(Execution.tenant_id == tenant_id, Execution.id == execution_id, Execution.status.in_(RUNNABLE))
        .values(**values)
        .returning(Execution.id)
    )
    return result.first() is not None


async def list_resumable(session: AsyncSession, *, now: datetime, limit: int = 100) -> list[ExecutionRecord]:
    """Rate-limited executions of every tenant whose ``resume_at`` has passed. Scheduler only:
    this is the one execution query that spans tenants."""
    rows = await session.scalars(
        select(Execution)
        .where(Execution.status == "rate_limited", Execution.resume_at <= now)
        .order_by(Execution.resume_at)
        .limit(limit)
    )
    return [_record(r) for r in rows]
