"""Cancellation of running executions: one poll of Redis per second for the whole process.

CancelExecution (server) sets ``QueueNames.cancel_key(tenant, execution)``; the watcher MGETs the
keys of every execution this process runs and sets the matching asyncio.Event, which run_plan
honours (it stops and reports ``cancelled``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.queue import QueueNames

__all__ = ["CancelWatcher"]

log = logging.getLogger(__name__)


class CancelWatcher:
    def __init__(self, redis: Redis, names: QueueNames, *, interval_s: float = 1.0) -> None:
        self._redis = redis
        self._names = names
        self._interval_s = interval_s
        self._watched: dict[str, asyncio.Event] = {}

    @contextlib.contextmanager
    def watch(self, tenant_id: str, execution_id: str) -> Iterator[asyncio.Event]:
        key = self._names.cancel_key(tenant_id, execution_id)
        event = asyncio.Event()
        self._watched[key] = event
        try:
            yield event
        finally:
            self._watched.pop(key, None)

    async def poll_once(self) -> None:
        keys = list(self._watched)
        if not keys:
            return
        values = await self._redis.mget(keys)
        for key, value in zip(keys, values, strict=True):
            event = self._watched.get(key)
            if value is not None and event is not None and not event.is_set():
                log.info("cancel requested for %s", key.rsplit(":", 1)[-1])
                event.set()

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except (RedisError, OSError) as exc:
                log.debug("cancel poll failed: %s", exc)
            await asyncio.sleep(self._interval_s)
