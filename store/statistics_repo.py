"""Per plan and config run statistics, and the plans' persistent context."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.access import raise_missing
from store.pagination import decode_token, encode_token, page_size
from store.records import ErrorInfo, Page, PlanContextRecord, RunTotals, StatisticRecord
from store.tables import PlanContext, PlanStatistics

__all__ = ["get", "get_context", "list_page", "put_context", "record_run"]

Json = dict[str, Any]
FAILURES = ("failed", "aborted")


def _record(row: PlanStatistics) -> StatisticRecord:
    return StatisticRecord(
        plan_key=row.plan_key,
        config_id=row.config_id,
        last_run_at=row.last_run_at,
        last_status=row.last_status,
        last_execution_id=row.last_execution_id,
        success_count=row.success_count,
        failure_count=row.failure_count,
        api_calls=row.api_calls,
        records=row.records,
        bytes=row.bytes,
        last_error=ErrorInfo.from_json(row.last_error),
        updated_at=row.updated_at,
    )


async def record_run(
    session: AsyncSession,
    tenant_id: str,
    plan_key: str,
    config_id: UUID,
    totals: RunTotals,
    *,
    at: datetime | None = None,
) -> StatisticRecord:
    """Add one finished run to the statistics in a single atomic upsert
    (``SET success_count = plan_statistics.success_count + excluded.success_count``...), so
    concurrent workers never lose an increment."""
    success = 1 if totals.status == "success" else 0
    failure = 1 if totals.status in FAILURES else 0
    error = totals.error.to_json() if totals.error else None
    run_at = at if at is not None else func.now()
    statement = insert(PlanStatistics).values(
        tenant_id=tenant_id,
        plan_key=plan_key,
        config_id=config_id,
        last_run_at=run_at,
        last_status=totals.status,
        last_execution_id=totals.execution_id,
        success_count=success,
        failure_count=failure,
        api_calls=totals.api_calls,
        records=totals.records,
        bytes=totals.bytes,
        last_error=error,
    )
    table = PlanStatistics.__table__.c
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[table.tenant_id, table.plan_key, table.config_id],
        set_={
            "last_run_at": excluded.last_run_at,
            "last_status": excluded.last_status,
            "last_execution_id": excluded.last_execution_id,
            "success_count": table.success_count + excluded.success_count,
            "failure_count": table.failure_count + excluded.failure_count,
            "api_calls": table.api_calls + excluded.api_calls,
            "records": table.records + excluded.records,
            "bytes": table.bytes + excluded.bytes,
            "last_error": func.coalesce(excluded.last_error, table.last_error),
            "updated_at": func.now(),
        },
    )
    row = await session.scalar(statement.returning(PlanStatistics).execution_options(populate_existing=True))
    assert row is not None
    return _record(row)


async def get(session: AsyncSession, tenant_id: str, plan_key: str, config_id: UUID) -> StatisticRecord:
    row = await session.scalar(
        select(PlanStatistics).where(
            PlanStatistics.tenant_id == tenant_id,
            PlanStatistics.plan_key == plan_key,
            PlanStatistics.config_id == config_id,
        )
    )
    if row is None:
        # Config ids are global UUIDs: statistics for this config under another tenant are theirs.
        await raise_missing(session, tenant_id, PlanStatistics.config_id, config_id, "statistics for config")
    return _record(row)


async def list_page(
    session: AsyncSession, tenant_id: str, plan_key: str, *, size: int = 0, token: str = ""
) -> Page[StatisticRecord]:
    """One plan's statistics, one entry per config, ordered by config id."""
    limit = page_size(size)
    query = select(PlanStatistics).where(
        PlanStatistics.tenant_id == tenant_id, PlanStatistics.plan_key == plan_key
    )
    after = decode_token(token, [UUID])
    if after is not None:
        query = query.where(PlanStatistics.config_id > after[0])
    rows = list(await session.scalars(query.order_by(PlanStatistics.config_id).limit(limit + 1)))
    next_token = encode_token([rows[limit - 1].config_id]) if len(rows) > limit else ""
    return Page(tuple(_record(r) for r in rows[:limit]), next_token)


# --- Plan context -----------------------------------------------------------------------------


async def get_context(session: AsyncSession, tenant_id: str, plan_id: UUID, config_id: UUID) -> Json:
    """The persistent context of a plan for a config; {} before the first run."""
    context = await session.scalar(
        select(PlanContext.context).where(
            PlanContext.tenant_id == tenant_id,
            PlanContext.plan_id == plan_id,
            PlanContext.config_id == config_id,
        )
    )
    return dict(context) if context is not None else {}


async def put_context(
    session: AsyncSession, tenant_id: str, plan_id: UUID, config_id: UUID, context: Json
) -> PlanContextRecord:
    statement = insert(PlanContext).values(
        tenant_id=tenant_id, plan_id=plan_id, config_id=config_id, context=context
    )
    statement = statement.on_conflict_do_update(
        index_elements=[PlanContext.tenant_id, PlanContext.plan_id, PlanContext.config_id],
        set_={"context": statement.excluded.context, "updated_at": func.now()},
    )
    row = await session.scalar(statement.returning(PlanContext).execution_options(populate_existing=True))
    assert row is not None
    return PlanContextRecord(
        plan_id=row.plan_id, config_id=row.config_id, context=row.context, updated_at=row.updated_at
    )
