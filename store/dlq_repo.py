"""The dead letter queue: jobs that failed for good, kept for inspection and manual retry."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, tuple_, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.ext.asyncio import AsyncSession

from store.access import raise_missing
from store.pagination import decode_token, encode_token, page_size
from store.records import (
    AttemptRecord,
    DlqEntryRecord,
    DlqReason,
    DlqStatsRecord,
    ErrorInfo,
    NewDlqEntry,
    Page,
)
from store.tables import DlqEntry

__all__ = ["add", "delete", "get", "list_page", "mark_retried", "stats"]


def _record(row: DlqEntry) -> DlqEntryRecord:
    return DlqEntryRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        execution_id=row.execution_id,
        plan_key=row.plan_key,
        config_id=row.config_id,
        reason=row.reason,  # type: ignore[arg-type]
        last_error=ErrorInfo.from_json(row.last_error),
        attempts=tuple(AttemptRecord.from_json(a) for a in row.attempts),
        job=row.job,
        created_at=row.created_at,
    )


def _live() -> list[ColumnElement[bool]]:
    return [DlqEntry.retried_execution_id.is_(None)]


async def add(session: AsyncSession, tenant_id: str, entry: NewDlqEntry) -> DlqEntryRecord:
    row = DlqEntry(
        tenant_id=tenant_id,
        execution_id=entry.execution_id,
        plan_key=entry.plan_key,
        config_id=entry.config_id,
        reason=entry.reason,
        last_error=entry.last_error.to_json() if entry.last_error else None,
        attempts=[a.to_json() for a in entry.attempts],
        job=entry.job,
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def _row(session: AsyncSession, tenant_id: str, entry_id: UUID, *, lock: bool = False) -> DlqEntry:
    query = select(DlqEntry).where(DlqEntry.tenant_id == tenant_id, DlqEntry.id == entry_id, *_live())
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        await raise_missing(session, tenant_id, DlqEntry.id, entry_id, "dlq entry")
    return row


async def get(session: AsyncSession, tenant_id: str, entry_id: UUID, *, lock: bool = False) -> DlqEntryRecord:
    return _record(await _row(session, tenant_id, entry_id, lock=lock))


def _scope(tenant_id: str | None) -> list[ColumnElement[bool]]:
    return _live() + ([] if tenant_id is None else [DlqEntry.tenant_id == tenant_id])


async def list_page(
    session: AsyncSession,
    tenant_id: str | None,
    *,
    plan_key: str | None = None,
    reason: DlqReason | None = None,
    size: int = 0,
    token: str = "",
) -> Page[DlqEntryRecord]:
    """Entries newest first. ``tenant_id=None`` lists every tenant (operators only: the caller
    checks the role)."""
    limit = page_size(size)
    query = select(DlqEntry).where(*_scope(tenant_id))
    if plan_key:
        query = query.where(DlqEntry.plan_key == plan_key)
    if reason:
        query = query.where(DlqEntry.reason == reason)
    after = decode_token(token, [datetime, UUID])
    if after is not None:
        query = query.where(tuple_(DlqEntry.created_at, DlqEntry.id) < tuple_(*after))
    query = query.order_by(DlqEntry.created_at.desc(), DlqEntry.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    next_token = encode_token([rows[limit - 1].created_at, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(_record(r) for r in rows[:limit]), next_token)


async def stats(session: AsyncSession, tenant_id: str | None) -> DlqStatsRecord:
    """Counts by reason and by plan, largest first; ``tenant_id=None`` counts every tenant."""
    where = _scope(tenant_id)
    total, oldest = (
        await session.execute(select(func.count(), func.min(DlqEntry.created_at)).where(*where))
    ).one()
    count = func.count().label("n")
    by_reason = await session.execute(
        select(DlqEntry.reason, count)
        .where(*where)
        .group_by(DlqEntry.reason)
        .order_by(count.desc(), DlqEntry.reason)
    )
    by_plan = await session.execute(
        select(DlqEntry.plan_key, count)
        .where(*where)
        .group_by(DlqEntry.plan_key)
        .order_by(count.desc(), DlqEntry.plan_key)
    )
    return DlqStatsRecord(
        total=int(total),
        by_reason=tuple((str(r), int(n)) for r, n in by_reason),
        by_plan=tuple((str(p), int(n)) for p, n in by_plan),
        oldest_at=oldest,
    )


async def mark_retried(session: AsyncSession, tenant_id: str, entry_id: UUID, execution_id: UUID) -> None:
    """Take the entry out of the DLQ, remembering the execution that retries it (audit trail)."""
    result = await session.execute(
        update(DlqEntry)
        .where(DlqEntry.tenant_id == tenant_id, DlqEntry.id == entry_id, *_live())
        .values(retried_execution_id=execution_id, retried_at=func.now())
        .returning(DlqEntry.id)
    )
    if result.first() is None:
        await raise_missing(session, tenant_id, DlqEntry.id, entry_id, "dlq entry")


async def delete(session: AsyncSession, tenant_id: str, entry_id: UUID) -> None:
    result = await session.execute(
        sql_delete(DlqEntry)
        .where(DlqEntry.tenant_id == tenant_id, DlqEntry.id == entry_id, *_live())
        .returning(DlqEntry.id)
    )
    if result.first() is None:
        await raise_missing(session, tenant_id, DlqEntry.id, entry_id, "dlq entry")
