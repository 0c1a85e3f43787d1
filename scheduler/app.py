"""The scheduler process: ticks until stopped (see scheduler/tick.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from scheduler.retention import retention_loop
from scheduler.tick import Scheduler
from settings.model import Settings
from store.database import create_engine, create_sessions
from worker.app import connect_redis, queue_names

__all__ = ["run_scheduler"]

log = logging.getLogger(__name__)


async def run_scheduler(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.scheduler.enabled:
        log.info("scheduler disabled (SCHEDULER_ENABLED=false); waiting for stop")
        await stop.wait()
        return
    async with contextlib.AsyncExitStack() as stack:
        db = create_engine(settings.database)
        stack.push_async_callback(db.dispose)
        redis = connect_redis(settings.redis)
        stack.push_async_callback(redis.aclose)
        sessions = create_sessions(db)
        scheduler = Scheduler(
            sessions,
            redis,
            queue_names(settings.redis),
            poll_interval_s=settings.scheduler.poll_interval_s,
        )
        log.info("scheduler polling every %.0fs", settings.scheduler.poll_interval_s)
        retention = asyncio.create_task(retention_loop(sessions, redis, stop), name="retention")
        try:
            await scheduler.run(stop)
        finally:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
        log.info("scheduler stopped")
