"""The scheduler's queries: which (plan, config) pairs exist and when each last ran, the
transaction lock that keeps schedulers from deciding at the same time, the bulk insert of the
queued executions, and the sweep of queued executions whose job may never have reached Redis.

These are the only queries that span tenants; they run in the scheduler only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "SCHEDULER_LOCK_KEY",
    "NewScheduledRun",
    "PairRow",
    "QueuedRow",
    "db_now",
    "insert_scheduled",
    "list_pairs",
    "list_unconfirmed",
    "mark_enqueued",
    "try_lock_tick",
]

# pg_advisory_xact_lock key of the scheduling decision ("orchid" + 1).
SCHEDULER_LOCK_KEY = 0x6F7263686964_01
ACTIVE_STATUSES = ("queued", "running", "rate_limited")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PairRow:
    tenant_id: str
    plan_id: UUID
    plan_key: str
    config_id: UUID
    integration: str
    wait_seconds: int | None
    last_started_at: datetime | None
    active: bool


@dataclass(frozen=True, slots=True)
class NewScheduledRun:
    tenant_id: str
    plan_id: UUID
    plan_key: str
    config_id: UUID
    integration: str
    trace_context: Json = field(default_factory=dict)
    id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """A queued execution, with the retry attempt its job must carry."""

    tenant_id: str
    id: UUID
    plan_key: str
    config_id: UUID | None
    trigger: str
    replay_of: UUID | None
    trace_context: Json
    attempt: int


async def try_lock_tick(session: AsyncSession) -> bool:
    """Take the scheduling lock for this transaction; False if another scheduler holds it."""
    got = await session.scalar(select(func.pg_try_advisory_xact_lock(SCHEDULER_LOCK_KEY)))
    return bool(got)


async def db_now(session: AsyncSession) -> datetime:
    """The transaction's now(): the same clock as every created_at it writes."""
    now = await session.scalar(select(func.now()))
    assert isinstance(now, datetime)
    return now


_PAIRS = text(
    """
SELECT p.tenant_id, p.id AS plan_id, p.key AS plan_key, c.id AS config_id,
       coalesce(p.integration_name, i.name, '') AS integration, p.wait_seconds,
       last.started AS last_started_at, (act.one IS NOT NULL) AS active
FROM plans p
JOIN configs c ON c.tenant_id = p.tenant_id AND c.integration_id = p.integration_id AND c.enabled
LEFT JOIN integrations i ON i.tenant_id = p.tenant_id AND i.id = p.integration_id
LEFT JOIN LATERAL (
    SELECT coalesce(e.started_at, e.created_at) AS started
    FROM executions e
    WHERE e.tenant_id = p.tenant_id AND e.plan_key = p.key AND e.config_id = c.id
      AND e.kind = 'plan' AND e.parent_id IS NULL
    ORDER BY e.created_at DESC
    LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT 1 AS one
    FROM executions e
    WHERE e.tenant_id = p.tenant_id AND e.plan_key = p.key AND e.config_id = c.id
      AND e.kind = 'plan' AND e.parent_id IS NULL
      AND e.status IN ('queued', 'running', 'rate_limited')
    LIMIT 1
) act ON true
WHERE p.enabled AND p.wait_seconds IS NOT NULL
"""
)


async def list_pairs(session: AsyncSession) -> list[PairRow]:
    """Every scheduled pair of enabled plan and enabled config, with its last start and whether
    it has an execution queued or running."""
    rows = await session.execute(_PAIRS)
    return [
        PairRow(
            tenant_id=r.tenant_id,
            plan_id=r.plan_id,
            plan_key=r.plan_key,
            config_id=r.config_id,
            integration=r.integration,
            wait_seconds=r.wait_seconds,
            last_started_at=r.last_started_at,
            active=bool(r.active),
        )
        for r in rows
    ]


_INSERT_SCHEDULED = text(
    """
INSERT INTO executions (tenant_id, id, plan_key, plan_id, config_id, integration, kind, trigger, status,
                        trace_context)
SELECT x.tenant_id, x.id, x.plan_key, x.plan_id, x.config_id, x.integration, 'plan', 'schedule', 'queued',
       x.trace_context::jsonb
FROM unnest(CAST(:tenants AS text[]), CAST(:ids AS uuid[]), CAST(:plan_keys AS text[]),
            CAST(:plan_ids AS uuid[]), CAST(:config_ids AS uuid[]), CAST(:integrations AS text[]),
            CAST(:trace_contexts AS text[]))
     AS x(tenant_id, id, plan_key, plan_id, config_id, integration, trace_context)
ON CONFLICT (tenant_id, plan_key, config_id)
    WHERE status IN ('queued', 'running', 'rate_limited') AND trigger = 'schedule'
    DO NOTHING
RETURNING id
"""
)
_INSERT_CHUNK = 5000


async def insert_scheduled(session: AsyncSession, runs: Sequence[NewScheduledRun]) -> set[UUID]:
    """Insert the queued executions of one tick: one INSERT ... SELECT FROM unnest(...) per 5,000
    runs. A pair that already has an active scheduled execution (uq_executions_active_schedule)
    is skipped; returns the ids actually inserted."""
    inserted: set[UUID] = set()
    for start in range(0, len(runs), _INSERT_CHUNK):
        chunk = runs[start : start + _INSERT_CHUNK]
        rows = await session.execute(
            _INSERT_SCHEDULED,
            {
                "tenants": [r.tenant_id for r in chunk],
                "ids": [r.id for r in chunk],
                "plan_keys": [r.plan_key for r in chunk],
                "plan_ids": [r.plan_id for r in chunk],
                "config_ids": [r.config_id for r in chunk],
                "integrations": [r.integration for r in chunk],
                "trace_contexts": [json.dumps(r.trace_context, separators=(",", ":")) for r in chunk],
            },
        )
        inserted.update(row.id for row in rows)
    return inserted


async def mark_enqueued(session: AsyncSession, ids: Sequence[tuple[str, UUID]]) -> None:
    """Record that these executions' jobs are in Redis."""
    if not ids:
        return
    await session.execute(
        text(
            "UPDATE executions e SET enqueued_at = now() "
            "FROM unnest(CAST(:tenants AS text[]), CAST(:ids AS uuid[])) AS x(tenant_id, id) "
            "WHERE e.tenant_id = x.tenant_id AND e.id = x.id"
        ),
        {"tenants": [t for t, _ in ids], "ids": [i for _, i in ids]},
    )


_UNCONFIRMED = text(
    """
SELECT e.tenant_id, e.id, e.plan_key, e.config_id, e.trigger, e.replay_of, e.trace_context,
       1 + (SELECT count(*) FROM execution_attempts a
            WHERE a.tenant_id = e.tenant_id AND a.execution_id = e.id AND a.outcome = 'failed') AS attempt
FROM executions e
WHERE e.status = 'queued' AND e.kind = 'plan' AND e.parent_id IS NULL
  AND ((e.enqueued_at IS NULL AND coalesce(e.resume_at, e.created_at) < now() - CAST(:min_age AS interval))
       OR e.enqueued_at < now() - CAST(:recheck_after AS interval))
ORDER BY e.created_at
LIMIT :limit
"""
)


async def list_unconfirmed(
    session: AsyncSession, *, min_age: timedelta, recheck_after: timedelta, limit: int = 1000
) -> list[QueuedRow]:
    """Queued executions whose job may not be in Redis: never confirmed (``enqueued_at`` NULL)
    for ``min_age`` past their creation or retry time, or confirmed longer than
    ``recheck_after`` ago. Re-enqueueing them is harmless: enqueue is idempotent per attempt."""
    rows = await session.execute(
        _UNCONFIRMED, {"min_age": min_age, "recheck_after": recheck_after, "limit": limit}
    )
    return [
        QueuedRow(
            tenant_id=r.tenant_id,
            id=r.id,
            plan_key=r.plan_key,
            config_id=r.config_id,
            trigger=r.trigger,
            replay_of=r.replay_of,
            trace_context=dict(r.trace_context or {}),
            attempt=int(r.attempt),
        )
        for r in rows
    ]
