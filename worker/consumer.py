"""Redis Streams mechanics of the worker: read, claim, heartbeat, ack, drain.

- Jobs are read with XREADGROUP in the consumer group under this process's unique name, at most
  ``concurrency`` at a time.
- An entry is acknowledged (XACK, then XDEL in the same MULTI) only after the handler returned,
  i.e. after the outcome is stored. Acks are batched: the entries whose handlers finished while
  the previous MULTI was in flight go together in the next one (one round trip, not one each),
  and a job's task ends only once its ack is done. A handler that raises or is cancelled leaves the entry
  pending, and XAUTOCLAIM hands it to a worker once it has been idle for the visibility timeout.
- A heartbeat re-claims this consumer's own in-flight entries (XCLAIM ... JUSTID, which resets
  their idle time), so a long job on a healthy worker never looks abandoned. The heartbeat checks
  ownership first, in one Lua call, so it never takes an entry back from a worker that claimed it.
- ``drain(grace_s)`` stops reading, lets running jobs finish for up to ``grace_s`` (heartbeats go
  on meanwhile), then cancels what is left; those entries stay pending for other workers.
- Redis errors never end the loop: every call is retried with backoff, and a stream or group that
  vanished (e.g. a Redis restarted without persistence) is created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.queue import Envelope, InvalidEnvelopeError, QueueNames, decode_envelope

__all__ = ["Delivery", "Handler", "StreamConsumer", "ensure_group"]

log = logging.getLogger(__name__)

# KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids this consumer runs.
# Resets the idle time of each entry still owned by this consumer; returns the ids another
# consumer owns now (an id no longer pending was just acknowledged: nothing to do).
HEARTBEAT_SCRIPT = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] then
    if p[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      table.insert(lost, ARGV[i])
    end
  end
end
return lost
"""

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
_MAX_BACKOFF_S = 2.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to the handler."""

    entry_id: str
    envelope: Envelope
    reclaimed: bool = False  # taken over from another consumer by XAUTOCLAIM


Handler = Callable[[Delivery], Awaitable[None]]
Tick = Callable[[], Awaitable[None]]


async def ensure_group(redis: Redis, names: QueueNames) -> None:
    """Create the stream and the consumer group if missing (from the start of the stream, so
    jobs added before the first worker ever ran are not skipped)."""
    try:
        await redis.xgroup_create(names.stream, names.group, id="0", mkstream=True)
        log.info("created consumer group %s on %s", names.group, names.stream)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        names: QueueNames,
        handler: Handler,
        *,
        consumer: str,
        concurrency: int,
        visibility_timeout_s: float,
        block_ms: int = 1000,
        on_tick: Tick | None = None,
        tick_interval_s: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._redis = redis
        self._names = names
        self._handler = handler
        self.consumer = consumer
        self._concurrency = concurrency
        self._visibility_ms = max(1, int(visibility_timeout_s * 1000))
        self._block_ms = block_ms
        self._on_tick = on_tick
        self._tick_s = min(tick_interval_s, visibility_timeout_s / 4)
        self._heartbeat_s = visibility_timeout_s / 3
        self._claim_s = min(visibility_timeout_s / 2, 5.0)
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._claim_cursor = "0-0"
        self._heartbeat = redis.register_script(HEARTBEAT_SCRIPT)
        # acks waiting for the next batch, and the task sending them (None when idle)
        self._acks: list[tuple[str, asyncio.Future[None]]] = []
        self._acker: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def free_slots(self) -> int:
        return self._concurrency - len(self._inflight)

    def stop(self) -> None:
        """Stop taking new jobs; run() returns once the running ones are done."""
        self._stopping.set()
        self._slot_freed.set()

    async def run(self) -> None:
        """Consume until stop(); then wait for the jobs already running."""
        await self._retrying("create group", lambda: ensure_group(self._redis, self._names))
        maintenance = asyncio.create_task(self._maintain(), name="consumer-maintenance")
        try:
            await self._read_loop()
            while self._inflight:
                await asyncio.wait(list(self._inflight.values()))
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance

    async def drain(self, run_task: asyncio.Task[None], grace_s: float) -> None:
        """Stop, give running jobs ``grace_s`` to finish, then cancel the rest (left pending)."""
        self.stop()
        done, _ = await asyncio.wait({run_task}, timeout=grace_s)
        if not done:
            left = list(self._inflight.values())
            log.warning("grace period over: leaving %d job(s) pending for other workers", len(left))
            for task in left:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run_task

    # --- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            if self.free_slots <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                batches = await self._read(self.free_slots)
                backoff = 0.1
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("consumer group %s is gone; creating it again", self._names.group)
                await self._retrying("create group", lambda: ensure_group(self._redis, self._names))
                continue
            except _TRANSIENT as exc:
                log.warning("reading %s failed (%s); retrying in %.1fs", self._names.stream, exc, backoff)
                await self._sleep_unless_stopping(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if self._stopping.is_set():
                break  # read in the same instant as stop(): left pending for other workers
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    self._start(entry_id, fields, reclaimed=False)

    async def _read(self, count: int) -> Any:
        """XREADGROUP ... BLOCK, abandoned the moment stop() is called: the connection is dropped,
        so Redis delivers nothing more to this consumer once it is stopping."""
        read = asyncio.ensure_future(
            self._redis.xreadgroup(
                self._names.group, self.consumer, {self._names.stream: ">"}, count=count, block=self._block_ms
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not read.done():
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await read
            return None
        return read.result()

    def _start(self, raw_id: bytes | str, fields: Mapping[Any, Any] | None, *, reclaimed: bool) -> None:
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        if entry_id in self._inflight:
            return  # already running here (a reclaim raced our own heartbeat)
        if fields is None:
            return
        try:
            envelope = decode_envelope(fields)
        except InvalidEnvelopeError as exc:
            log.error("dropping malformed stream entry %s: %s", entry_id, exc)
            task = asyncio.create_task(self._ack(entry_id))
        else:
            delivery = Delivery(entry_id, envelope, reclaimed)
            task = asyncio.create_task(self._process(delivery), name=f"job-{envelope.job_id}")
        self._inflight[entry_id] = task
        task.add_done_callback(lambda _t: self._finished(entry_id))

    def _finished(self, entry_id: str) -> None:
        self._inflight.pop(entry_id, None)
        self._slot_freed.set()

    async def _process(self, delivery: Delivery) -> None:
        try:
            await self._handler(delivery)
        except asyncio.CancelledError:
            log.info("job %s interrupted; left pending for redelivery", delivery.envelope.job_id)
            raise
        except Exception:
            log.exception("job %s: handler failed; left pending for redelivery", delivery.envelope.job_id)
            return
        # Ack last: a crash before this line leaves the entry pending, and XAUTOCLAIM redelivers it.
        await self._ack(delivery.entry_id)

    async def _ack(self, entry_id: str) -> None:
        """Acknowledge (and delete) the entry in the next batch; returns once that is done (or
        given up on after 60 s of Redis errors: the entry is then redelivered, at least once)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.append((entry_id, done))
        if self._acker is None:
            self._acker = asyncio.create_task(self._send_acks(), name="consumer-acks")
        # Shielded: a cancelled job must not cancel the batch that carries other jobs' acks.
        await asyncio.shield(done)

    async def _send_acks(self) -> None:
        try:
            await asyncio.sleep(0)  # let the jobs finishing in this loop iteration join the batch
            while self._acks:
                batch, self._acks = self._acks, []
                ids = [entry_id for entry_id, _ in batch]

                async def ack(ids: list[str] = ids) -> None:
                    async with self._redis.pipeline(transaction=True) as pipe:
                        pipe.xack(self._names.stream, self._names.group, *ids)
                        pipe.xdel(self._names.stream, *ids)
                        await pipe.execute()

                try:
                    await self._retrying(f"ack {ids[0]} (+{len(ids) - 1})", ack, give_up_after_s=60.0)
                except Exception:  # e.g. the group vanished: the entries are redelivered or gone
                    log.exception("acknowledging %d entries failed", len(ids))
                finally:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._acker = None

    # --- heartbeat, reclaim and the owner's periodic work ---------------------------------------

    async def _maintain(self) -> None:
        last_heartbeat = last_claim = 0.0
        while True:
            now = time.monotonic()
            try:
                if self._inflight and now - last_heartbeat >= self._heartbeat_s:
                    await self.heartbeat()
                    last_heartbeat = now
                if not self._stopping.is_set() and self.free_slots > 0 and now - last_claim >= self._claim_s:
                    await self.claim_stale()
                    last_claim = now
                if self._on_tick is not None:
                    await self._on_tick()
            except (RedisError, OSError) as exc:
                log.warning("consumer maintenance failed: %s", exc)
            await asyncio.sleep(self._tick_s)

    async def heartbeat(self) -> list[str]:
        """Keep this consumer's running entries claimed; returns the ids another consumer took."""
        ids = list(self._inflight)
        if not ids:
            return []
        lost_raw = await self._heartbeat(
            keys=[self._names.stream], args=[self._names.group, self.consumer, *ids]
        )
        lost = [i.decode() if isinstance(i, bytes) else str(i) for i in lost_raw or ()]
        for entry_id in lost:
            log.warning("entry %s was claimed by another consumer while running here", entry_id)
        return lost

    async def claim_stale(self) -> int:
        """Take over entries idle longer than the visibility timeout (their worker is gone)."""
        free = self.free_slots
        if free <= 0:
            return 0
        result: Any = await self._redis.xautoclaim(
            self._names.stream,
            self._names.group,
            self.consumer,
            min_idle_time=self._visibility_ms,
            start_id=self._claim_cursor,
            count=free,
        )
        next_id, entries = result[0], result[1]
        self._claim_cursor = next_id.decode() if isinstance(next_id, bytes) else str(next_id)
        claimed = 0
        for entry_id, fields in entries:
            if entry_id is None:
                continue
            log.info("reclaimed stale entry %s", entry_id)
            self._start(entry_id, fields, reclaimed=True)
            claimed += 1
        return claimed

    # --- helpers ------------------------------------------------------------------------------

    async def _retrying(
        self, what: str, call: Callable[[], Awaitable[object]], *, give_up_after_s: float | None = None
    ) -> None:
        """Run a Redis call until it succeeds (Redis may be restarting)."""
        backoff = 0.1
        started = time.monotonic()
        while True:
            try:
                await call()
                return
            except _TRANSIENT as exc:
                if give_up_after_s is not None and time.monotonic() - started > give_up_after_s:
                    log.error("%s: giving up after %.0fs: %s", what, give_up_after_s, exc)
                    return
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
