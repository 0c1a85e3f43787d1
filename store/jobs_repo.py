"""The worker's queries that executions_repo / statistics_repo do not cover: loading everything
one run needs, fencing a finished attempt, and putting a failed execution back in the queue.

Lifecycle writes use executions_repo (start_attempt, finish), statistics_repo (record_run,
put_context) and dlq_repo (add); these functions sit in the same transactions as those.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.crypto import SecretBox, is_encrypted
from store.records import ErrorInfo
from store.tables import Config, Execution, ExecutionAttempt, Plan, PlanContext

__all__ = [
    "RunInputs",
    "close_attempt",
    "current_attempt",
    "decrypt_values",
    "load_run_inputs",
    "requeue_for_retry",
]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What one run reads from the database. ``plan_definition`` is None when the plan is gone."""

    plan_id: UUID | None
    plan_updated_at: datetime | None
    plan_definition: Json | None
    config_values: Json
    secrets: tuple[str, ...]
    context: Json


def _secret_leaves(document: Any, box: SecretBox) -> Iterator[str]:
    if is_encrypted(document):
        plain = box.decrypt(document)
        if isinstance(plain, str):
            yield plain
        elif plain is not None:
            yield from _strings(plain)
    elif isinstance(document, dict):
        for value in document.values():
            yield from _secret_leaves(value, box)
    elif isinstance(document, list):
        for value in document:
            yield from _secret_leaves(value, box)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def decrypt_values(values: Json, box: SecretBox) -> tuple[Json, tuple[str, ...]]:
    """The plaintext config values and the secret strings among them (for the redactor)."""
    plain = box.decrypt_tree(values)
    secrets = tuple(s for s in _secret_leaves(values, box) if s)
    return (plain if isinstance(plain, dict) else {}), secrets


async def load_run_inputs(
    session: AsyncSession,
    tenant_id: str,
    *,
    plan_id: UUID | None,
    plan_key: str,
    config_id: UUID | None,
    secrets: SecretBox,
) -> RunInputs:
    """Plan (by id, else by key), decrypted config values and the persisted context."""
    plan_query = select(Plan.id, Plan.updated_at, Plan.definition).where(Plan.tenant_id == tenant_id)
    plan_query = (
        plan_query.where(Plan.id == plan_id)
        if plan_id is not None
        else plan_query.where(Plan.key == plan_key)
    )
    plan = (await session.execute(plan_query)).first()
    values: Json = {}
    found_secrets: tuple[str, ...] = ()
    context: Json = {}
    if config_id is not None:
        raw = await session.scalar(
            select(Config.values).where(Config.tenant_id == tenant_id, Config.id == config_id)
        )
        if raw is not None:
            values, found_secrets = decrypt_values(raw, secrets)
        if plan is not None:
            stored = await session.scalar(
                select(PlanContext.context).where(
                    PlanContext.tenant_id == tenant_id,
                    PlanContext.plan_id == plan.id,
                    PlanContext.config_id == config_id,
                )
            )
            context = dict(stored) if stored else {}
    if plan is None:
        return RunInputs(None, None, None, values, found_secrets, context)
    return RunInputs(plan.id, plan.updated_at, dict(plan.definition), values, found_secrets, context)


async def current_attempt(session: AsyncSession, tenant_id: str, execution_id: UUID) -> int:
    """The retry attempt the execution is at: 1 + its attempts that failed. A job envelope with
    a lower attempt is a stale duplicate and must not run."""
    failed = await session.scalar(
        select(func.count())
        .select_from(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id == execution_id,
            ExecutionAttempt.outcome == "failed",
        )
    )
    return 1 + int(failed or 0)


async def close_attempt(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    attempt: int,
    outcome: str,
    error: ErrorInfo | None,
) -> bool:
    """Close attempt ``attempt`` if it is still this worker's (outcome running). False means
    another worker took the job over (or it was cancelled): the caller must write nothing else."""
    result = await session.execute(
        update(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id == execution_id,
            ExecutionAttempt.attempt == attempt,
            ExecutionAttempt.outcome == "running",
        )
        .values(outcome=outcome, finished_at=func.now(), error=error.to_json() if error else None)
        .returning(ExecutionAttempt.id)
    )
    return result.first() is not None


async def requeue_for_retry(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    *,
    resume_at: datetime,
    error: ErrorInfo | None,
    stats: Json,
) -> bool:
    """Put a running execution back to queued until ``resume_at`` (its retry). ``enqueued_at``
    is cleared: the scheduler's sweep re-enqueues the retry if the worker dies before it does."""
    result = await session.execute(
        update(Execution)
        .where(
            Execution.tenant_id == tenant_id,
            Execution.id == execution_id,
            Execution.status == "running",
        )
        .values(
            status="queued",
            resume_at=resume_at,
            enqueued_at=None,
            error=error.to_json() if error else None,
            stats=stats,
        )
        .returning(Execution.id)
    )
    return result.first() is not None
