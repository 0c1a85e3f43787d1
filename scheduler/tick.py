"""One scheduling tick, and the loop that runs ticks until stopped.

A tick, in order:
1. In ONE transaction holding the scheduling advisory lock (so two schedulers never decide at
   the same time, and each sees the other's committed executions): read every pair, decide which
   are due (scheduler/due.py), insert one queued execution per due pair.
2. After the commit, push their jobs to the stream (idempotent per execution and attempt) and
   record ``enqueued_at``. A crash or a Redis outage between 1 and 2 leaves executions queued
   with ``enqueued_at`` NULL; step 3 of a later tick enqueues them.
3. The sweep: queued executions whose job was never confirmed in Redis (scheduled or triggered
   runs, retries whose worker died) are pushed again; duplicates are no-ops.

The loop sleeps until the next known due time or the poll interval, whichever comes first. A
database or Redis outage skips a beat and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.queue import Envelope, QueueNames, enqueue_args
from scheduler import metrics
from scheduler.due import PairState, next_wake_s, select_due
from store import scheduling_repo
from store.scheduling_repo import NewScheduledRun, PairRow, QueuedRow
from worker.dbretry import is_transient

__all__ = ["Scheduler", "TickResult"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("orchid.scheduler")

_PUSH_CHUNK = 1000
# Chunks pushed at the same time (each on its own connection).
_PUSHES_IN_FLIGHT = 2
# Jobs per call of ENQUEUE_MANY_SCRIPT.
_SCRIPT_BATCH = 250
# Scheduled runs are the roots of their traces.
_ROOT = otel_context.Context()

# ENQUEUE_SCRIPT (engine/queue.py) for many jobs in one call. KEYS[1] stream, KEYS[2..] the jobs'
# dedupe keys; ARGV[1] dedupe TTL (s), then per job its field count n and its n fields/values.
# Returns one entry per job: the new entry id, or false when the job was enqueued before.
ENQUEUE_MANY_SCRIPT = """
local pos = 2
local added = {}
for i = 2, #KEYS do
  local n = tonumber(ARGV[pos])
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    added[i - 1] = redis.call('XADD', KEYS[1], '*', unpack(ARGV, pos + 1, pos + n))
  else
    added[i - 1] = false
  end
  pos = pos + n + 1
end
return added
"""
# How long a queued execution may go without a confirmed job before the sweep pushes it again.
SWEEP_MIN_AGE = timedelta(seconds=10)
# Confirmed jobs are re-checked this long after confirmation (covers a Redis that lost data).
SWEEP_RECHECK = timedelta(minutes=10)
# When another scheduler holds the lock, look again this soon.
LOCKED_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class TickResult:
    locked: bool
    enqueued: int = 0
    reenqueued: int = 0
    next_wake_s: float = 0.0


def _state(row: PairRow) -> PairState:
    return PairState(
        tenant_id=row.tenant_id,
        plan_id=row.plan_id,
        plan_key=row.plan_key,
        config_id=row.config_id,
        integration=row.integration,
        wait_seconds=row.wait_seconds,
        last_started_at=row.last_started_at,
        active=row.active,
    )


def _new_run(pair: PairState) -> NewScheduledRun:
    """A queued execution for a due pair, with the root span of its trace (started and ended
    here; its context is formatted directly, without making it current: 10,000 of these per tick
    must stay cheap)."""
    span = _tracer.start_span(
        "schedule plan",
        context=_ROOT,
        kind=trace.SpanKind.PRODUCER,
        attributes={"orchid.tenant_id": pair.tenant_id, "orchid.plan_key": pair.plan_key},
    )
    span.end()
    context: dict[str, str] = {}
    span_context = span.get_span_context()
    if span_context.is_valid:
        traceparent = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"
        )
        context = {"traceparent": traceparent, "tracestate": span_context.trace_state.to_header()}
    return NewScheduledRun(
        tenant_id=pair.tenant_id,
        plan_id=pair.plan_id,
        plan_key=pair.plan_key,
        config_id=pair.config_id,
        integration=pair.integration,
        trace_context=context,
    )


def _envelope(run: NewScheduledRun) -> Envelope:
    return Envelope(
        job_id=str(run.id),
        tenant_id=run.tenant_id,
        plan_key=run.plan_key,
        config_id=str(run.config_id),
        trigger="schedule",
        traceparent=str(run.trace_context.get("traceparent", "")),
        tracestate=str(run.trace_context.get("tracestate", "")),
    )


def _swept_envelope(row: QueuedRow) -> Envelope:
    trigger = row.trigger if row.trigger in {"schedule", "manual", "retry", "replay"} else "manual"
    return Envelope(
        job_id=str(row.id),
        tenant_id=row.tenant_id,
        plan_key=row.plan_key,
        config_id=str(row.config_id or ""),
        attempt=row.attempt,
        trigger=trigger,  # type: ignore[arg-type]
        replay_of=str(row.replay_of or ""),
        traceparent=str(row.trace_context.get("traceparent", "")),
        tracestate=str(row.trace_context.get("tracestate", "")),
    )


def _enqueue_many_args(names: QueueNames, envelopes: Sequence[Envelope]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of ENQUEUE_MANY_SCRIPT, from each job's ENQUEUE_SCRIPT arguments."""
    keys = [names.stream]
    args: list[str] = []
    for envelope in envelopes:
        (_stream, dedupe), (ttl, *fields) = enqueue_args(names, envelope)
        if not args:
            args.append(ttl)
        keys.append(dedupe)
        args.append(str(len(fields)))
        args.extend(fields)
    return keys, args


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        names: QueueNames,
        *,
        poll_interval_s: float,
        sweep_min_age: timedelta = SWEEP_MIN_AGE,
        sweep_recheck: timedelta = SWEEP_RECHECK,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._names = names
        self._poll_s = poll_interval_s
        self._sweep_min_age = sweep_min_age
        self._sweep_recheck = sweep_recheck

    async def tick(self) -> TickResult:
        started = time.perf_counter()
        async with self._sessions.begin() as session:
            if not await scheduling_repo.try_lock_tick(session):
                metrics.TICKS.labels("skipped").inc()
                return TickResult(locked=False, next_wake_s=min(LOCKED_RETRY_S, self._poll_s))
            now = await scheduling_repo.db_now(session)
            pairs = [_state(row) for row in await scheduling_repo.list_pairs(session)]
            read = time.perf_counter()
            runs = [_new_run(pair) for pair in select_due(pairs, now)]
            inserted = await scheduling_repo.insert_scheduled(session, runs)
            runs = [run for run in runs if run.id in inserted]  # a pair already active is skipped
        decided = time.perf_counter()
        wake = next_wake_s(pairs, now, self._poll_s)
        enqueued = await self._push([_envelope(run) for run in runs])
        metrics.JOBS_ENQUEUED.labels("schedule").inc(enqueued)
        pushed = time.perf_counter()
        reenqueued = await self._sweep()
        metrics.TICKS.labels("ran").inc()
        metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        if runs or reenqueued:
            log.info("tick: %d due of %d pairs enqueued, %d re-enqueued (read %.3fs, insert %.3fs, "
                     "push %.3fs, sweep %.3fs)", len(runs), len(pairs), reenqueued, read - started,
                     decided - read, pushed - decided, time.perf_counter() - pushed)  # fmt: skip
        return TickResult(locked=True, enqueued=enqueued, reenqueued=reenqueued, next_wake_s=wake)

    async def _push(self, envelopes: Sequence[Envelope]) -> int:
        """Push jobs and confirm them in the database; returns how many are confirmed. A Redis
        failure leaves the rest unconfirmed for the sweep. Two chunks are in flight at a time, so
        packing the next one overlaps Redis running the previous one."""
        confirmed: list[tuple[str, UUID]] = []
        failures: list[BaseException] = []
        in_flight = asyncio.Semaphore(_PUSHES_IN_FLIGHT)

        async def push(chunk: Sequence[Envelope]) -> None:
            async with in_flight:
                if failures:
                    return  # Redis is failing: leave the rest to the sweep
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for at in range(0, len(chunk), _SCRIPT_BATCH):
                            keys, args = _enqueue_many_args(self._names, chunk[at : at + _SCRIPT_BATCH])
                            # EVAL, not EVALSHA: a freshly restarted Redis needs no SCRIPT LOAD
                            pipe.eval(ENQUEUE_MANY_SCRIPT, len(keys), *keys, *args)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    failures.append(exc)
                    return
                confirmed.extend((e.tenant_id, UUID(e.job_id)) for e in chunk)

        await asyncio.gather(
            *(push(envelopes[start : start + _PUSH_CHUNK]) for start in range(0, len(envelopes), _PUSH_CHUNK))
        )
        if failures:
            log.warning("enqueue failed after %d of %d jobs (%s); the sweep will retry the rest",
                        len(confirmed), len(envelopes), failures[0])  # fmt: skip
        if confirmed:
            async with self._sessions.begin() as session:
                await scheduling_repo.mark_enqueued(session, confirmed)
        return len(confirmed)

    async def _sweep(self) -> int:
        async with self._sessions.begin() as session:
            rows = await scheduling_repo.list_unconfirmed(
                session, min_age=self._sweep_min_age, recheck_after=self._sweep_recheck
            )
        if not rows:
            return 0
        pushed = await self._push([_swept_envelope(row) for row in rows])
        metrics.SWEPT.inc(pushed)
        return pushed

    async def observe_queue(self) -> None:
        """Export the stream's length and pending count."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xlen(self._names.stream)
                pipe.xpending(self._names.stream, self._names.group)
                length, pending = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError):
            return
        if isinstance(length, int):
            metrics.STREAM_LENGTH.set(length)
        if isinstance(pending, dict):
            metrics.QUEUE_PENDING.set(int(pending.get("pending", 0)))

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; outages skip a beat and are retried with backoff."""
        backoff = 1.0
        while not stop.is_set():
            try:
                result = await self.tick()
                wait = result.next_wake_s
                backoff = 1.0
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, RedisError)):
                    log.exception("scheduling tick failed")
                else:
                    log.warning(
                        "scheduling tick skipped: %s unavailable (%s)", _which(exc), type(exc).__name__
                    )
                metrics.TICKS.labels("failed").inc()
                wait = min(backoff, self._poll_s)
                backoff = min(backoff * 2, 10.0)
            await self.observe_queue()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()


def _which(exc: BaseException) -> str:
    return "redis" if isinstance(exc, RedisError) else "database"
