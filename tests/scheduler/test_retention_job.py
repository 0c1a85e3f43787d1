"""The scheduler's daily retention job: one scheduler of the fleet runs it per lock period."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.retention import LOCK_KEY, run_retention_once

pytestmark = [pytest.mark.timeout(60)]


async def test_only_one_scheduler_applies_retention_per_period(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    assert await run_retention_once(sessions, redis, lock_ttl_s=60)
    assert not await run_retention_once(sessions, redis, lock_ttl_s=60)  # another scheduler, same day
    assert 0 < await redis.pttl(LOCK_KEY) <= 60_000
    await redis.delete(LOCK_KEY)  # the period is over
    assert await run_retention_once(sessions, redis, lock_ttl_s=60)
