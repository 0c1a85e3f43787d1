"""The daily retention job of the rate-limit states (monitoring.retention), run by the scheduler.

Every scheduler runs this loop; a Redis lock (SET NX with a TTL of most of a day) makes one of
them do the work per day: at start, then once a day. A failed run releases the lock and is
tried again after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitoring.retention import apply_retention

__all__ = ["LOCK_KEY", "retention_loop", "run_retention_once"]

log = logging.getLogger(__name__)

LOCK_KEY = "orchid:retention:rate_limit_states"
DAY_S = 24 * 3600.0


async def run_retention_once(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, *, lock_ttl_s: float = DAY_S - 600.0
) -> bool:
    """Apply retention unless another scheduler did within ``lock_ttl_s``; True when this one did."""
    owner = f"{socket.gethostname()}-{os.getpid()}"
    if not await redis.set(LOCK_KEY, owner, nx=True, px=int(lock_ttl_s * 1000)):
        return False
    try:
        await apply_retention(sessions)
    except BaseException:
        with contextlib.suppress(RedisError, OSError):
            await redis.delete(LOCK_KEY)
        raise
    return True


async def retention_loop(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    stop: asyncio.Event,
    *,
    interval_s: float = DAY_S,
    retry_s: float = 300.0,
) -> None:
    """Until ``stop``: retention now, then every ``interval_s`` (one scheduler of the fleet)."""
    while not stop.is_set():
        wait = interval_s
        try:
            await run_retention_once(sessions, redis, lock_ttl_s=max(1.0, interval_s - 600.0))
        except (RedisError, SQLAlchemyError, OSError) as exc:
            log.warning("rate-limit retention failed (%s); retrying in %.0fs", exc, retry_s)
            wait = retry_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await stop.wait()
