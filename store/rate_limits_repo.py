"""Rate-limit observations (a monthly-partitioned time series) and alerts.

Partition maintenance: ``ensure_partitions`` creates the coming months' partitions and
``drop_expired_partitions`` drops those entirely older than the retention (13 months). Both call
the SQL functions the migration installs (``orchid_create_rate_limit_partitions``,
``orchid_drop_rate_limit_partitions``), which can also run from pg_cron. ``record_state`` creates
a missing month on demand, so a lapsed maintenance job never loses an observation.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, literal_column, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from store.access import ensure_not_foreign
from store.pagination import decode_token, encode_token, page_size
from store.records import (
    AlertSeverity,
    Page,
    RateLimitAlertRecord,
    RateLimitObservation,
    RateLimitStateRecord,
)
from store.tables import Config, RateLimitAlert, RateLimitState

__all__ = [
    "RETENTION_MONTHS",
    "close_alert",
    "drop_expired_partitions",
    "ensure_partitions",
    "history_page",
    "latest_page",
    "list_alerts",
    "list_partitions",
    "open_alert",
    "record_state",
]

RETENTION_MONTHS = 13
HISTORY_DEFAULT_SIZE = 100
HISTORY_MAX_SIZE = 1000


def _state(row: RateLimitState) -> RateLimitStateRecord:
    return RateLimitStateRecord(
        id=row.id,
        config_id=row.config_id,
        endpoint=row.endpoint,
        remaining=row.remaining,
        limit=row.limit,
        reset_at=row.reset_at,
        consumption_rate_per_minute=row.consumption_rate_per_minute,
        recovery_eta_seconds=row.recovery_eta_seconds,
        exhaustion_projection_seconds=row.exhaustion_projection_seconds,
        source=row.source,  # type: ignore[arg-type]
        observed_at=row.observed_at,
    )


def alert_record(row: RateLimitAlert) -> RateLimitAlertRecord:
    return RateLimitAlertRecord(
        id=row.id,
        config_id=row.config_id,
        endpoint=row.endpoint,
        severity=row.severity,  # type: ignore[arg-type]
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        remaining=row.remaining,
        limit=row.limit,
        message=row.message,
    )


# --- Partitions -------------------------------------------------------------------------------


async def ensure_partitions(session: AsyncSession, *, start: date, months: int = 3) -> list[str]:
    """Create the monthly partitions from ``start``'s month for ``months`` months; return the
    names of those created (existing ones are skipped)."""
    rows = await session.execute(
        text("SELECT orchid_create_rate_limit_partitions(:start, :months)"),
        {"start": start, "months": months},
    )
    return [str(r[0]) for r in rows]


async def drop_expired_partitions(
    session: AsyncSession, *, now: datetime, retention_months: int = RETENTION_MONTHS
) -> list[str]:
    """Drop the partitions whose whole range ends before the first day of ``now``'s month minus
    ``retention_months``; return their names."""
    rows = await session.execute(
        text("SELECT orchid_drop_rate_limit_partitions(:months, :now)"),
        {"months": retention_months, "now": now},
    )
    return [str(r[0]) for r in rows]


async def list_partitions(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'rate_limit_states'::regclass ORDER BY c.relname"
        )
    )
    return [str(r[0]) for r in rows]


# --- States -----------------------------------------------------------------------------------


async def record_state(
    session: AsyncSession, tenant_id: str, observation: RateLimitObservation
) -> RateLimitStateRecord:
    values = {
        "tenant_id": tenant_id,
        "config_id": observation.config_id,
        "endpoint": observation.endpoint,
        "remaining": observation.remaining,
        "limit": observation.limit,
        "reset_at": observation.reset_at,
        "consumption_rate_per_minute": observation.consumption_rate_per_minute,
        "recovery_eta_seconds": observation.recovery_eta_seconds,
        "exhaustion_projection_seconds": observation.exhaustion_projection_seconds,
        "source": observation.source,
        "observed_at": observation.observed_at,
    }
    statement = insert(RateLimitState).values(**values).returning(RateLimitState)
    try:
        async with session.begin_nested():
            row = await session.scalar(statement)
    except DBAPIError as exc:
        if "no partition of relation" not in str(exc.orig):
            raise
        await ensure_partitions(session, start=observation.observed_at.date(), months=1)
        row = await session.scalar(statement)
    assert row is not None
    return _state(row)


async def latest_page(
    session: AsyncSession, tenant_id: str, *, config_id: UUID | None = None, size: int = 0, token: str = ""
) -> Page[RateLimitStateRecord]:
    """The latest observation of every (config, endpoint), ordered by (config_id, endpoint)."""
    if config_id is not None:
        await ensure_not_foreign(session, Config.tenant_id, Config.id, config_id, tenant_id, "config")
    limit = page_size(size)
    query = select(RateLimitState).where(RateLimitState.tenant_id == tenant_id)
    if config_id is not None:
        query = query.where(RateLimitState.config_id == config_id)
    after = decode_token(token, [UUID, str])
    if after is not None:
        query = query.where(tuple_(RateLimitState.config_id, RateLimitState.endpoint) > tuple_(*after))
    query = (
        query.distinct(RateLimitState.config_id, RateLimitState.endpoint)
        .order_by(RateLimitState.config_id, RateLimitState.endpoint, RateLimitState.observed_at.desc())
        .limit(limit + 1)
    )
    rows = list(await session.scalars(query))
    next_token = (
        encode_token([rows[limit - 1].config_id, rows[limit - 1].endpoint]) if len(rows) > limit else ""
    )
    return Page(tuple(_state(r) for r in rows[:limit]), next_token)


async def history_page(
    session: AsyncSession,
    tenant_id: str,
    *,
    config_id: UUID | None = None,
    endpoint: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    size: int = 0,
    token: str = "",
) -> Page[RateLimitStateRecord]:
    """Observations in [since, until), newest first. ``until`` defaults to now and ``since`` to
    24 hours before ``until``."""
    if config_id is not None:
        await ensure_not_foreign(session, Config.tenant_id, Config.id, config_id, tenant_id, "config")
    limit = page_size(size, default=HISTORY_DEFAULT_SIZE, maximum=HISTORY_MAX_SIZE)
    end = until if until is not None else func.now()
    day: ColumnElement[Any] = literal_column("interval '24 hours'")
    start = (
        since
        if since is not None
        else (until - timedelta(hours=24) if until is not None else func.now() - day)
    )
    query = select(RateLimitState).where(
        RateLimitState.tenant_id == tenant_id,
        RateLimitState.observed_at >= start,
        RateLimitState.observed_at < end,
    )
    if config_id is not None:
        query = query.where(RateLimitState.config_id == config_id)
    if endpoint:
        query = query.where(RateLimitState.endpoint == endpoint)
    after = decode_token(token, [datetime, UUID])
    if after is not None:
        query = query.where(tuple_(RateLimitState.observed_at, RateLimitState.id) < tuple_(*after))
    query = query.order_by(RateLimitState.observed_at.desc(), RateLimitState.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    next_token = encode_token([rows[limit - 1].observed_at, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(_state(r) for r in rows[:limit]), next_token)


# --- Alerts -----------------------------------------------------------------------------------


async def open_alert(
    session: AsyncSession,
    tenant_id: str,
    *,
    config_id: UUID,
    endpoint: str,
    severity: AlertSeverity,
    remaining: int | None,
    limit: int | None,
    message: str = "",
) -> RateLimitAlertRecord:
    """Open an alert for (config, endpoint), or raise the open one's severity (never lower it)."""
    statement = insert(RateLimitAlert).values(
        tenant_id=tenant_id,
        config_id=config_id,
        endpoint=endpoint,
        severity=severity,
        remaining=remaining,
        limit=limit,
        message=message,
    )
    table = RateLimitAlert.__table__.c
    statement = statement.on_conflict_do_update(
        index_elements=[table.tenant_id, table.config_id, table.endpoint],
        index_where=table.resolved_at.is_(None),
        set_={
            # the severity only ever rises during an episode
            "severity": text(
                "CASE WHEN excluded.severity = 'CRITICAL' THEN 'CRITICAL' ELSE rate_limit_alerts.severity END"
            ),
            "remaining": statement.excluded.remaining,
            "limit": statement.excluded.limit,
            "message": statement.excluded.message,
        },
    )
    row = await session.scalar(statement.returning(RateLimitAlert).execution_options(populate_existing=True))
    assert row is not None
    return alert_record(row)


async def close_alert(session: AsyncSession, tenant_id: str, *, config_id: UUID, endpoint: str) -> int:
    """Resolve the open alert of (config, endpoint), if any; return how many were resolved."""
    result = await session.execute(
        update(RateLimitAlert)
        .where(
            RateLimitAlert.tenant_id == tenant_id,
            RateLimitAlert.config_id == config_id,
            RateLimitAlert.endpoint == endpoint,
            RateLimitAlert.resolved_at.is_(None),
        )
        .values(resolved_at=func.now())
        .returning(RateLimitAlert.id)
    )
    return len(result.all())


async def list_alerts(
    session: AsyncSession,
    tenant_id: str,
    *,
    open_only: bool = False,
    config_id: UUID | None = None,
    severity: AlertSeverity | None = None,
    size: int = 0,
    token: str = "",
) -> Page[RateLimitAlertRecord]:
    """Alerts newest first (keyset on (opened_at, id) descending)."""
    if config_id is not None:
        await ensure_not_foreign(session, Config.tenant_id, Config.id, config_id, tenant_id, "config")
    limit = page_size(size)
    query = select(RateLimitAlert).where(RateLimitAlert.tenant_id == tenant_id)
    if open_only:
        query = query.where(RateLimitAlert.resolved_at.is_(None))
    if config_id is not None:
        query = query.where(RateLimitAlert.config_id == config_id)
    if severity:
        query = query.where(RateLimitAlert.severity == severity)
    after = decode_token(token, [datetime, UUID])
    if after is not None:
        query = query.where(tuple_(RateLimitAlert.opened_at, RateLimitAlert.id) < tuple_(*after))
    query = query.order_by(RateLimitAlert.opened_at.desc(), RateLimitAlert.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    next_token = encode_token([rows[limit - 1].opened_at, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(alert_record(r) for r in rows[:limit]), next_token)
