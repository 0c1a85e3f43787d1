"""An in-process RateLimiter: exact sliding-window limits, priorities, and server back-pressure.

Exactness: each bucket keeps the admission times of its last N requests (a sliding-window log), and
admits a request at time t only if fewer than N were admitted in (t - window, t]. So no window of
``window_secs`` ever holds more than N requests, at any alignment.

Bucket keys (``bucket_key``), per rule scope:
- per_config:   tenant + config            (one API account's whole budget)
- per_endpoint: tenant + config + endpoint (endpoint = "METHOD host/path-template")
- global:       the integration            (every tenant and config of it, as the proto says; the API
                host when the plan names no integration)
The rule's own numbers are part of the key, so two rules of the same scope never share a log.

Priority: requests wait in one queue per bucket ordered by (priority desc, arrival); only the head
of every bucket it needs may take a slot, so when a slot frees the highest priority waiter gets it.

Back-pressure (``observe``): Retry-After, or X-RateLimit-Remaining: 0 with X-RateLimit-Reset, pause
the tenant's config against that API host until the given time.

Single event loop, no threads: admission checks and bookkeeping run without awaiting in between, so
concurrent tasks cannot both take the last slot.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.backoff import parse_retry_after
from engine.errors import RateLimitExceededError
from engine.ports import RateLimitRule, RateLimitSubject

__all__ = ["MemoryRateLimiter", "bucket_key", "endpoint_host", "pause_key"]

# A value of X-RateLimit-Reset above this is an epoch timestamp, below it a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000
# Never sleep less than this: guards against float rounding leaving a 1e-15 s wait forever.
_MIN_SLEEP = 1e-6


def endpoint_host(endpoint: str) -> str:
    """The host of an endpoint "METHOD host/path-template"."""
    target = endpoint.split(" ", 1)[-1]
    return target.split("/", 1)[0]


def bucket_key(rule: RateLimitRule, subject: RateLimitSubject) -> str:
    if rule.scope == "per_endpoint":
        ident = f"{subject.tenant_id}|{subject.config_id}|{subject.endpoint}"
    elif rule.scope == "global":
        ident = subject.integration or endpoint_host(subject.endpoint)
    else:
        ident = f"{subject.tenant_id}|{subject.config_id}"
    return f"{rule.scope}|{ident}|{rule.requests}/{rule.window_secs:g}"


def pause_key(subject: RateLimitSubject) -> str:
    return f"{subject.tenant_id}|{subject.config_id}|{endpoint_host(subject.endpoint)}"


@dataclass(eq=False, slots=True)
class _Waiter:
    order: tuple[int, int]  # (-priority, arrival): smaller goes first
    keys: tuple[str, ...]
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryRateLimiter:
    """RateLimiter for one process. ``clock`` is monotonic seconds, ``wall`` epoch seconds."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._logs: dict[str, deque[float]] = {}
        self._queues: dict[str, list[_Waiter]] = {}
        self._pauses: dict[str, float] = {}
        self._arrivals = itertools.count()

    # --- RateLimiter ----------------------------------------------------------------------------

    async def acquire(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject, *, max_wait_s: float
    ) -> float:
        buckets = [(bucket_key(rule, subject), rule) for rule in rules]
        paused = pause_key(subject)
        start = self._clock()
        if not self._queued(buckets) and self._wait_needed(buckets, paused, start) <= 0:
            self._admit(buckets, start)  # the common case: a free slot and nobody waiting
            return 0.0
        priority = max((rule.priority for rule in rules), default=0)
        waiter = _Waiter((-priority, next(self._arrivals)), tuple(key for key, _ in buckets))
        self._enqueue(waiter)
        try:
            while True:
                waiter.wake.clear()
                now = self._clock()
                waited = now - start
                if self._is_head(waiter):
                    wait = self._wait_needed(buckets, paused, now)
                    if wait <= 0:
                        self._admit(buckets, now)
                        return waited
                    if waited + wait > max_wait_s:
                        raise self._exceeded(subject, waited + wait, max_wait_s)
                    timeout = wait
                else:
                    timeout = max_wait_s - waited
                    if timeout <= 0:
                        raise self._exceeded(subject, waited, max_wait_s)
                await self._wait(waiter, max(timeout, _MIN_SLEEP))
        finally:
            self._dequeue(waiter)

    async def observe(self, subject: RateLimitSubject, status_code: int, headers: Mapping[str, str]) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        seconds = parse_retry_after(lowered.get("retry-after"), now=datetime.fromtimestamp(self._wall(), UTC))
        if seconds is None:
            seconds = self._reset_seconds(lowered)
        if seconds is not None and seconds > 0:
            key = pause_key(subject)
            until = self._clock() + seconds
            self._pauses[key] = max(until, self._pauses.get(key, 0.0))

    # --- internals ------------------------------------------------------------------------------

    def _reset_seconds(self, headers: Mapping[str, str]) -> float | None:
        for prefix in ("x-ratelimit-", "ratelimit-"):
            remaining, reset = headers.get(prefix + "remaining"), headers.get(prefix + "reset")
            if remaining is None or reset is None:
                continue
            try:
                if float(remaining) > 0:
                    return None
                value = float(reset)
            except ValueError:
                continue
            return value - self._wall() if value > _EPOCH_THRESHOLD else value
        return None

    def _exceeded(
        self, subject: RateLimitSubject, needed: float, max_wait_s: float
    ) -> RateLimitExceededError:
        return RateLimitExceededError(
            f"rate limit for {subject.endpoint} needs a wait of {needed:.1f}s, more than the allowed "
            f"{max_wait_s:.1f}s",
            wait_s=needed,
        )

    def _wait_needed(self, buckets: list[tuple[str, RateLimitRule]], paused: str, now: float) -> float:
        """Seconds until every bucket has a free slot and the endpoint is not paused (0 = now)."""
        wait = 0.0
        until = self._pauses.get(paused)
        if until is not None:
            if until <= now:
                del self._pauses[paused]
            else:
                wait = until - now
        for key, rule in buckets:
            log = self._logs.get(key)
            if log is None:
                continue
            while log and now - log[0] >= rule.window_secs:
                log.popleft()
            if not log:
                del self._logs[key]
            elif len(log) >= rule.requests:
                wait = max(wait, rule.window_secs - (now - log[len(log) - rule.requests]))
        return wait

    def _admit(self, buckets: list[tuple[str, RateLimitRule]], now: float) -> None:
        for key, _ in buckets:
            self._logs.setdefault(key, deque()).append(now)

    def _queued(self, buckets: list[tuple[str, RateLimitRule]]) -> bool:
        return any(self._queues.get(key) for key, _ in buckets)

    def _is_head(self, waiter: _Waiter) -> bool:
        return all(self._queues[key][0] is waiter for key in waiter.keys)

    def _enqueue(self, waiter: _Waiter) -> None:
        for key in waiter.keys:
            queue = self._queues.setdefault(key, [])
            queue.insert(bisect.bisect([w.order for w in queue], waiter.order), waiter)

    def _dequeue(self, waiter: _Waiter) -> None:
        for key in waiter.keys:
            queue = self._queues.get(key)
            if queue is None:
                continue
            was_head = bool(queue) and queue[0] is waiter
            queue.remove(waiter)
            if not queue:
                del self._queues[key]
            elif was_head:
                queue[0].wake.set()  # the next in line re-checks now instead of at its timeout

    async def _wait(self, waiter: _Waiter, seconds: float) -> None:
        """Sleep ``seconds`` (with the injected sleep) or until woken, whichever comes first."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(waiter.wake.wait())
        try:
            await asyncio.wait((sleeper, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
