"""The retention job of the rate-limit time series: 13 months, a monthly partition at a time.

``apply_retention`` drops every monthly partition of ``rate_limit_states`` that lies wholly
before the cutoff (cheap: no row-by-row delete, no vacuum debt), deletes the older rows of the
one partition the cutoff falls into, and makes sure the coming months' partitions exist. Run it
daily (the scheduler, or ``python -m monitoring.retention`` from cron).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store import rate_limit_monitor_repo, rate_limits_repo

__all__ = ["RETENTION_MONTHS", "RetentionResult", "apply_retention", "months_before"]

log = logging.getLogger(__name__)

RETENTION_MONTHS = 13


def months_before(moment: datetime, months: int) -> datetime:
    """The same instant ``months`` calendar months earlier (the day clamped to the month's end)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30,
            31, 31, 30, 31, 30, 31]  # fmt: skip
    return moment.replace(year=year, month=month, day=min(moment.day, days[month - 1]))


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff: datetime
    dropped_partitions: tuple[str, ...]
    deleted_rows: int
    created_partitions: tuple[str, ...]


async def apply_retention(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None, months: int = RETENTION_MONTHS
) -> RetentionResult:
    """Delete states older than ``months`` months before ``now``."""
    moment = now if now is not None else datetime.now(UTC)
    cutoff = months_before(moment, months)
    async with sessions.begin() as session:
        dropped = await rate_limits_repo.drop_expired_partitions(session, now=moment, retention_months=months)
        deleted = await rate_limit_monitor_repo.delete_states_before(session, cutoff)
        created = await rate_limits_repo.ensure_partitions(session, start=moment.date(), months=3)
    log.info(
        "rate-limit retention: cutoff %s, dropped %d partitions, deleted %d rows",
        cutoff.isoformat(), len(dropped), deleted,
    )  # fmt: skip
    return RetentionResult(cutoff, tuple(dropped), deleted, tuple(created))


def main() -> None:  # pragma: no cover - thin CLI
    from settings.model import Settings
    from store.database import create_engine, create_sessions

    async def run() -> None:
        engine = create_engine(Settings.from_env().database)
        try:
            result = await apply_retention(create_sessions(engine))
            print(f"dropped {len(result.dropped_partitions)} partitions, deleted {result.deleted_rows} rows")
        finally:
            await engine.dispose()

    logging.basicConfig(level=logging.INFO)
    asyncio.run(run())


if __name__ == "__main__":
    main()
