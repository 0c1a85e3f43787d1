"""Retention over monthly partitions: 13 months kept, older partitions dropped, stragglers deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitoring.retention import apply_retention, months_before
from store import rate_limits_repo
from store.records import RateLimitObservation
from store.tables import RateLimitState

pytestmark = pytest.mark.stack


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (datetime(2025, 3, 31, 12, tzinfo=UTC), 13, datetime(2024, 2, 29, 12, tzinfo=UTC)),
        (datetime(2025, 1, 15, tzinfo=UTC), 13, datetime(2023, 12, 15, tzinfo=UTC)),
        (datetime(2025, 12, 1, tzinfo=UTC), 12, datetime(2024, 12, 1, tzinfo=UTC)),
    ],
)
def test_months_before(moment, months, expected) -> None:
    assert months_before(moment, months) == expected


async def test_retention_drops_old_partitions_and_rows(sessions: async_sessionmaker[AsyncSession]) -> None:
    now = datetime(2030, 6, 15, 12, tzinfo=UTC)
    config = uuid.uuid4()
    moments = {
        "two_years": datetime(2028, 5, 10, tzinfo=UTC),
        "fourteen_months": datetime(2029, 4, 20, tzinfo=UTC),
        "just_expired": datetime(2029, 5, 10, tzinfo=UTC),  # cutoff is 2029-05-15 12:00
        "just_kept": datetime(2029, 5, 20, tzinfo=UTC),
        "recent": datetime(2030, 6, 1, tzinfo=UTC),
    }
    async with sessions.begin() as session:
        for name, at in moments.items():
            await rate_limits_repo.record_state(
                session,
                "t1",
                RateLimitObservation(config_id=config, endpoint=name, observed_at=at, remaining=1),
            )
        before = await rate_limits_repo.list_partitions(session)
    result = await apply_retention(sessions, now=now)
    async with sessions() as session:
        left = set(await session.scalars(select(RateLimitState.endpoint)))
        after = await rate_limits_repo.list_partitions(session)
    assert left == {"just_kept", "recent"}
    assert result.deleted_rows == 1
    assert {"rate_limit_states_y2028m05", "rate_limit_states_y2029m04"} <= set(result.dropped_partitions)
    assert "rate_limit_states_y2029m05" in after  # the cutoff's month is kept, its old rows deleted
    assert set(result.dropped_partitions) <= set(before) and not set(result.dropped_partitions) & set(after)
    assert result.cutoff == datetime(2029, 5, 15, 12, tzinfo=UTC)
