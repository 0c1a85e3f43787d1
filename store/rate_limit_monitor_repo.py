"""Queries of the rate-limit monitor (monitoring/recorder.py, monitoring/retention.py).

store.rate_limits_repo serves the RPCs and records states; this module adds what the monitor
needs on top: the recent samples an endpoint's consumption rate is computed from, and alert
*transitions* that report whether this caller made them. Several workers observe the same
endpoint at once; the partial unique index "one open alert per (tenant, config, endpoint)" plus
conditional UPDATEs make exactly one of them win each transition, so each is published once.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.rate_limits_repo import alert_record
from store.records import AlertSeverity, RateLimitAlertRecord
from store.tables import RateLimitAlert, RateLimitState

__all__ = [
    "delete_states_before",
    "escalate_alert",
    "open_alert_if_none",
    "open_severity",
    "recent_samples",
    "resolve_alert",
]


async def recent_samples(
    session: AsyncSession,
    tenant_id: str,
    config_id: UUID,
    endpoint: str,
    *,
    since: datetime,
    source: str = "headers",
) -> list[tuple[datetime, int]]:
    """(observed_at, remaining) of the endpoint's states since ``since``, oldest first."""
    rows = await session.execute(
        select(RateLimitState.observed_at, RateLimitState.remaining)
        .where(
            RateLimitState.tenant_id == tenant_id,
            RateLimitState.config_id == config_id,
            RateLimitState.endpoint == endpoint,
            RateLimitState.observed_at >= since,
            RateLimitState.source == source,
            RateLimitState.remaining.is_not(None),
        )
        .order_by(RateLimitState.observed_at)
        .limit(1000)
    )
    return [(at, int(remaining)) for at, remaining in rows if remaining is not None]


async def open_severity(
    session: AsyncSession, tenant_id: str, config_id: UUID, endpoint: str
) -> AlertSeverity | None:
    severity = await session.scalar(
        select(RateLimitAlert.severity).where(
            RateLimitAlert.tenant_id == tenant_id,
            RateLimitAlert.config_id == config_id,
            RateLimitAlert.endpoint == endpoint,
            RateLimitAlert.resolved_at.is_(None),
        )
    )
    return severity  # type: ignore[return-value]


async def open_alert_if_none(
    session: AsyncSession, tenant_id: str, *, config_id: UUID, endpoint: str, severity: AlertSeverity,
    remaining: int | None, limit: int | None, message: str,
) -> RateLimitAlertRecord | None:  # fmt: skip
    """Open an alert unless one is open; the new alert, or None when another writer's is open."""
    table = RateLimitAlert.__table__.c
    statement = (
        insert(RateLimitAlert)
        .values(
            tenant_id=tenant_id,
            config_id=config_id,
            endpoint=endpoint,
            severity=severity,
            remaining=remaining,
            limit=limit,
            message=message,
        )
        .on_conflict_do_nothing(
            index_elements=[table.tenant_id, table.config_id, table.endpoint],
            index_where=table.resolved_at.is_(None),
        )
        .returning(RateLimitAlert)
    )
    row = await session.scalar(statement)
    return None if row is None else alert_record(row)


async def escalate_alert(
    session: AsyncSession, tenant_id: str, *, config_id: UUID, endpoint: str,
    remaining: int | None, limit: int | None, message: str,
) -> RateLimitAlertRecord | None:  # fmt: skip
    """Raise the open WARNING alert to CRITICAL; None when there is none (already escalated)."""
    row = await session.scalar(
        update(RateLimitAlert)
        .where(
            RateLimitAlert.tenant_id == tenant_id,
            RateLimitAlert.config_id == config_id,
            RateLimitAlert.endpoint == endpoint,
            RateLimitAlert.resolved_at.is_(None),
            RateLimitAlert.severity == "WARNING",
        )
        .values(severity="CRITICAL", remaining=remaining, limit=limit, message=message)
        .returning(RateLimitAlert)
    )
    return None if row is None else alert_record(row)


async def resolve_alert(
    session: AsyncSession, tenant_id: str, *, config_id: UUID, endpoint: str
) -> RateLimitAlertRecord | None:
    """Resolve the open alert; None when none is open (another writer resolved it)."""
    row = await session.scalar(
        update(RateLimitAlert)
        .where(
            RateLimitAlert.tenant_id == tenant_id,
            RateLimitAlert.config_id == config_id,
            RateLimitAlert.endpoint == endpoint,
            RateLimitAlert.resolved_at.is_(None),
        )
        .values(resolved_at=func.now())
        .returning(RateLimitAlert)
    )
    return None if row is None else alert_record(row)


async def delete_states_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete the states observed before ``cutoff`` that whole-partition drops left behind."""
    result = await session.execute(
        delete(RateLimitState).where(RateLimitState.observed_at < cutoff).returning(RateLimitState.id)
    )
    return len(result.all())
