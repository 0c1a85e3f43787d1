"""rate_limit_states: monthly partitions, 13-month retention, latest/history reads; alerts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store import rate_limits_repo
from store.records import RateLimitObservation

Sessions = async_sessionmaker[AsyncSession]


async def test_partitions_are_created_and_expired_ones_dropped(sessions: Sessions) -> None:
    async with sessions.begin() as s:
        created = await rate_limits_repo.ensure_partitions(s, start=date(2024, 8, 17), months=4)
        assert created == [f"rate_limit_states_y2024m{m:02d}" for m in (8, 9, 10, 11)]
        assert await rate_limits_repo.ensure_partitions(s, start=date(2024, 8, 1), months=2) == []
        # 13 months before November 2025 is October 2024: August and September 2024 go.
        dropped = await rate_limits_repo.drop_expired_partitions(s, now=datetime(2025, 11, 15, tzinfo=UTC))
        assert dropped == ["rate_limit_states_y2024m08", "rate_limit_states_y2024m09"]
        remaining = await rate_limits_repo.list_partitions(s)
    assert "rate_limit_states_y2024m10" in remaining and "rate_limit_states_y2024m09" not in remaining


async def test_a_missing_month_is_created_on_write(sessions: Sessions) -> None:
    config = uuid4()
    observed = datetime(2031, 5, 3, 12, tzinfo=UTC)
    async with sessions.begin() as s:
        await rate_limits_repo.record_state(
            s,
            "t",
            RateLimitObservation(
                config_id=config, endpoint="GET /x", observed_at=observed, remaining=5, limit=100
            ),
        )
        assert "rate_limit_states_y2031m05" in await rate_limits_repo.list_partitions(s)
        history = await rate_limits_repo.history_page(
            s, "t", since=observed - timedelta(hours=1), until=observed + timedelta(hours=1)
        )
    assert [h.remaining for h in history.items] == [5]


async def test_latest_state_per_endpoint_and_history_newest_first(sessions: Sessions) -> None:
    config = uuid4()
    now = datetime.now(UTC)
    async with sessions.begin() as s:
        for minutes, endpoint, remaining in [(3, "GET /a", 90), (2, "GET /a", 80), (1, "GET /b", 10)]:
            await rate_limits_repo.record_state(
                s,
                "t",
                RateLimitObservation(
                    config_id=config,
                    endpoint=endpoint,
                    observed_at=now - timedelta(minutes=minutes),
                    remaining=remaining,
                    limit=100,
                ),
            )
        await rate_limits_repo.record_state(
            s,
            "other",
            RateLimitObservation(config_id=uuid4(), endpoint="GET /a", observed_at=now, remaining=1),
        )
        latest = await rate_limits_repo.latest_page(s, "t")
        history = await rate_limits_repo.history_page(s, "t", size=2)
        rest = await rate_limits_repo.history_page(s, "t", size=2, token=history.next_page_token)
    assert [(x.endpoint, x.remaining) for x in latest.items] == [("GET /a", 80), ("GET /b", 10)]
    assert [x.remaining for x in history.items + rest.items] == [10, 80, 90]


async def test_alerts_escalate_and_resolve(sessions: Sessions) -> None:
    config = uuid4()
    async with sessions.begin() as s:
        await rate_limits_repo.open_alert(
            s, "t", config_id=config, endpoint="GET /a", severity="WARNING", remaining=15, limit=100
        )
        alert = await rate_limits_repo.open_alert(
            s, "t", config_id=config, endpoint="GET /a", severity="CRITICAL", remaining=5, limit=100
        )
        assert alert.severity == "CRITICAL" and alert.remaining == 5
        alert = await rate_limits_repo.open_alert(
            s, "t", config_id=config, endpoint="GET /a", severity="WARNING", remaining=12, limit=100
        )
        assert alert.severity == "CRITICAL"
        assert len((await rate_limits_repo.list_alerts(s, "t", open_only=True)).items) == 1
        assert await rate_limits_repo.close_alert(s, "t", config_id=config, endpoint="GET /a") == 1
        assert (await rate_limits_repo.list_alerts(s, "t", open_only=True)).items == ()
        assert len((await rate_limits_repo.list_alerts(s, "t")).items) == 1
        assert (await rate_limits_repo.list_alerts(s, "other")).items == ()
