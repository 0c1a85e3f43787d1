"""The fleet-wide RateLimiter: sliding-window logs in Redis, shared by every worker and fan-out task.

Semantics match engine.limiter_memory (same bucket scopes, same "never more than N in any window"
promise, priority first), but the state lives in Redis and every check-and-count is one Lua script
(engine.limiter_scripts), so no two workers can both take the last slot. Redis' clock is the only
clock: workers with skewed clocks still share one timeline.

Fairness model, in two layers:
- Across tenants sharing one bucket (the ``global`` scope is shared by every tenant of an
  integration): the waiting line is start-time fair queued per tenant (see limiter_scripts), so a
  tenant's huge fan-out spreads over future slots and another tenant's request is served next.
- Across tenants with separate buckets nothing is shared in Redis. Within one worker a fan-out only
  occupies the tasks its ``concurrency`` allows, and a waiting task sleeps until its own slot (no
  polling herd), so a tenant that waits on its limit costs the others no Redis or CPU time. Fair
  scheduling of executions onto worker slots is the worker's job.

A request goes out at the earliest ``window + margin_ms(window)`` after the request whose slot it
takes: the API counts arrivals, and a request admitted a few ms before another may arrive
after it. Utilisation stays within ~1% of the budget.

Headers (``observe``): Retry-After on a 429/503, or Remaining 0 with a reset, pauses the tenant's
config against that API host for everyone; Remaining/Reset/Limit become a cap on the endpoint that
every admission counts down (engine.ratelimit_headers reads every header family).

Redis keys (``ratelimit:`` prefix; ``{window}`` is ``<requests>r<seconds>s``):
- ``ratelimit:per_config:{tenant}:{config}:{window}``            (+ ``:q``, ``:qx``, ``:qt``)
- ``ratelimit:per_endpoint:{tenant}:{config}:{endpoint}:{window}`` (+ waiting keys)
- ``ratelimit:global:{integration or host}:{window}``             (+ waiting keys)
- ``ratelimit:pause:{tenant}:{config}:{host}``   epoch ms until which the host is paused
- ``ratelimit:cap:{tenant}:{config}:{endpoint}`` the API's stated budget
All keys carry TTLs; nothing needs cleaning up. Multi-key scripts mean a Redis Cluster would need
all of a request's keys in one slot: not supported (Orchid runs one Redis primary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.errors import DependencyUnavailableError, RateLimitExceededError
from engine.limiter_scripts import ACQUIRE, CANCEL, OBSERVE
from engine.ports import RateLimitRule, RateLimitSubject
from engine.ratelimit_headers import (
    DEFAULT_HEADER_NAMES,
    HeaderNames,
    RateLimitInfo,
    parse_rate_limit_headers,
)

__all__ = [
    "KEY_PREFIX",
    "BucketState",
    "LimiterObserver",
    "RedisRateLimiter",
    "bucket_key",
    "cap_key",
    "endpoint_host",
    "margin_ms",
    "pause_key",
]

log = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit"
_PRIORITY_CLAMP = 400
# A waiter's place in line lapses this long after its expected wake-up (a dead worker's waiters
# stop blocking others after that).
_GRACE_MS = 3000
# A worker takes up to LEASE_SLOTS slots in one call, one per LEASE_MIN_ROOM slots left (so a
# lease only exists while at least 128 slots are free, where an unused one costs little).
LEASE_SLOTS = 16
LEASE_MIN_ROOM = 64
# Statuses whose Retry-After pauses the endpoint for every worker.
_PAUSE_STATUSES = frozenset({429, 503})


def endpoint_host(endpoint: str) -> str:
    """The host of an endpoint "METHOD host/path-template"."""
    target = endpoint.split(" ", 1)[-1]
    return target.split("/", 1)[0]


def _window(rule: RateLimitRule) -> str:
    return f"{rule.requests}r{rule.window_secs:g}s"


def bucket_key(rule: RateLimitRule, subject: RateLimitSubject) -> str:
    """The Redis key of the sliding-window log a rule applies to this subject."""
    if rule.scope == "per_endpoint":
        ident = f"{subject.tenant_id}:{subject.config_id}:{subject.endpoint}"
    elif rule.scope == "global":
        ident = subject.integration or endpoint_host(subject.endpoint)
    else:
        ident = f"{subject.tenant_id}:{subject.config_id}"
    return f"{KEY_PREFIX}:{rule.scope}:{ident}:{_window(rule)}"


def pause_key(subject: RateLimitSubject) -> str:
    return f"{KEY_PREFIX}:pause:{subject.tenant_id}:{subject.config_id}:{endpoint_host(subject.endpoint)}"


def cap_key(subject: RateLimitSubject) -> str:
    return f"{KEY_PREFIX}:cap:{subject.tenant_id}:{subject.config_id}:{subject.endpoint}"


def _room(result: list[Any]) -> int:
    """The least remaining of an admission's buckets (large when there are no rules)."""
    tail = result[3:]
    return min((int(tail[i]) for i in range(0, len(tail), 2)), default=LEASE_MIN_ROOM)


def margin_ms(window_secs: float) -> int:
    """Extra spacing added to a window: 1% of it, between 50 ms and 0.5 s (see module doc)."""
    return int(min(500.0, max(50.0, window_secs * 10.0)))


@dataclass(frozen=True, slots=True)
class BucketState:
    """One bucket right after an admission: for monitoring (source "limiter")."""

    rule: RateLimitRule
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted request leaves the window


class LimiterObserver(Protocol):
    """What the limiter reports; monitoring implements it. Calls must be quick and never raise."""

    def waiting(self, subject: RateLimitSubject, resume_at: float) -> None:
        """A request starts waiting; ``resume_at`` is the expected epoch second it goes out."""

    def waited(self, subject: RateLimitSubject, seconds: float) -> None:
        """A request waited ``seconds`` in total before it was admitted (or gave up)."""

    def admitted(self, subject: RateLimitSubject, states: Sequence[BucketState]) -> None:
        """A request was admitted; ``states`` are its buckets afterwards."""

    def observed(self, subject: RateLimitSubject, status_code: int, info: RateLimitInfo) -> None:
        """A response carried rate-limit headers."""


class RedisRateLimiter:
    """RateLimiter over a shared Redis.

    ``headers`` are the config's rate-limit header names (``HeaderNames.from_config`` of
    ``configs.rate_limit_headers``); ``observer`` receives waits, admissions and header states;
    ``on_wait`` is awaited once when a request starts a wait of at least ``report_wait_s``, with
    the expected resume time (epoch seconds), so the worker can show the execution as rate-limited.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        headers: HeaderNames = DEFAULT_HEADER_NAMES,
        observer: LimiterObserver | None = None,
        on_wait: Callable[[RateLimitSubject, float], Awaitable[None]] | None = None,
        report_wait_s: float = 1.0,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self._names = headers
        self._observer = observer
        self._on_wait = on_wait
        self._report_wait_s = report_wait_s
        self._wall = wall
        self._sleep = sleep
        self._acquire = redis.register_script(ACQUIRE)
        self._cancel = redis.register_script(CANCEL)
        self._observe = redis.register_script(OBSERVE)
        # Slots taken in advance while a budget is far from full: (count, expires, monotonic).
        self._leases: dict[tuple[Any, ...], tuple[int, float]] = {}
        self._room: dict[tuple[Any, ...], int] = {}  # the least remaining after the last admission
        self._renewing: set[tuple[Any, ...]] = set()  # one lease renewal in flight per bucket set

    # --- RateLimiter ----------------------------------------------------------------------------

    async def acquire(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject, *, max_wait_s: float
    ) -> float:
        keys, args = self._keys_and_args(rules, subject)
        priority = max((rule.priority for rule in rules), default=0)
        priority = max(-_PRIORITY_CLAMP, min(_PRIORITY_CLAMP, priority))
        if await self._leased(rules, subject, keys, args, priority):
            return 0.0
        waiter = uuid.uuid4().hex
        start = time.monotonic()
        arrival = 0
        reported = False
        first = True
        try:
            while True:
                result = await self._run(
                    self._acquire, keys, [waiter, subject.tenant_id, priority, arrival, _GRACE_MS, 1, *args]
                )
                waited = 0.0 if first else time.monotonic() - start  # a slot free at once: no wait
                first = False
                arrival = int(result[2])
                if int(result[0]) >= 1:
                    self._room[(tuple(keys), priority)] = _room(result)
                    self._admitted(rules, subject, result[3:], waited)
                    return waited
                wait = int(result[1]) / 1000.0
                if waited + wait > max_wait_s:
                    await self._leave(keys, waiter, subject)
                    self._report_waited(subject, waited)
                    raise RateLimitExceededError(
                        f"rate limit for {subject.endpoint} needs a wait of {waited + wait:.1f}s, more than "
                        f"the allowed {max_wait_s:.1f}s",
                        wait_s=waited + wait,
                    )
                if not reported and wait >= self._report_wait_s:
                    reported = True
                    await self._report_waiting(subject, wait)
                await self._sleep(wait + random.uniform(0.0, 0.003))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._leave(keys, waiter, subject))
            raise

    def _keys_and_args(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject
    ) -> tuple[list[str], list[Any]]:
        keys = [pause_key(subject), cap_key(subject)]
        args: list[Any] = []
        for rule in rules:
            base = bucket_key(rule, subject)
            keys += [base, base + ":q", base + ":qx", base + ":qt"]
            window_ms = int(rule.window_secs * 1000) + margin_ms(rule.window_secs)
            args += [max(1, rule.requests), window_ms]
        return keys, args

    async def _leased(
        self,
        rules: Sequence[RateLimitRule],
        subject: RateLimitSubject,
        keys: list[str],
        args: list[Any],
        priority: int,
    ) -> bool:
        """Take a slot from this worker's lease, or renew the lease, while the budget is far from
        full. A lease is up to LEASE_SLOTS slots (one per LEASE_MIN_ROOM slots left) counted in
        Redis at once and used within half the window's margin: a request sent that much after its
        slot was counted still lies inside the margin, so "never more than N in any window" holds.
        One renewal is in flight per bucket set; near the limit there is no lease and every request
        goes through the exact, queued script. An unused leased slot lapses (counted, never sent):
        a cost paid only while far from the limit. True when this request got a slot."""
        key = (tuple(keys), priority)
        now = time.monotonic()
        count, expires = self._leases.get(key, (0, 0.0))
        if count > 0 and now < expires:
            self._leases[key] = (count - 1, expires)
            return True
        slots = min(LEASE_SLOTS, self._room.get(key, 0) // LEASE_MIN_ROOM)
        if slots < 2 or key in self._renewing:
            return False
        self._renewing.add(key)
        try:
            result = await self._run(
                self._acquire,
                keys,
                [uuid.uuid4().hex, subject.tenant_id, priority, 0, _GRACE_MS, -slots, *args],
            )
        finally:
            self._renewing.discard(key)
        admitted = int(result[0])
        if admitted < 1:
            self._room[key] = 0
            return False
        self._room[key] = _room(result)
        windows = [rule.window_secs for rule in rules]
        lease_s = min((margin_ms(w) for w in windows), default=100) / 2000.0
        self._leases[key] = (admitted - 1, time.monotonic() + lease_s)
        self._admitted(rules, subject, result[3:], 0.0)
        return True

    async def observe(self, subject: RateLimitSubject, status_code: int, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit_headers(headers, now=self._wall(), names=self._names)
        if info.empty:
            return
        pause = info.retry_after_s if status_code in _PAUSE_STATUSES else None
        if info.remaining == 0 and info.reset_after_s:
            pause = max(pause or 0.0, info.reset_after_s)
        args = [
            int((pause or 0.0) * 1000),
            -1 if info.remaining is None else info.remaining,
            -1 if info.reset_after_s is None else int(info.reset_after_s * 1000),
            -1 if info.limit is None else info.limit,
            -1 if info.window_s is None else int(info.window_s * 1000),
        ]
        if pause or info.remaining is not None:
            await self._run(self._observe, [pause_key(subject), cap_key(subject)], args)
        if pause:
            log.info("rate limit: %s paused for %.1fs (HTTP %d)", subject.endpoint, pause, status_code)
        if self._observer is not None:
            self._observer.observed(subject, status_code, info)

    # --- internals ------------------------------------------------------------------------------

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise DependencyUnavailableError(f"rate limiter: Redis is unavailable: {exc}") from exc

    async def _leave(self, keys: list[str], waiter: str, subject: RateLimitSubject) -> None:
        bucket_keys = keys[2:]
        if bucket_keys:
            with contextlib.suppress(DependencyUnavailableError):
                await self._run(self._cancel, bucket_keys, [waiter, subject.tenant_id])

    def _admitted(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject, tail: list[Any], waited: float
    ) -> None:
        if waited > 0:
            self._report_waited(subject, waited)
        if self._observer is None or not rules:
            return
        states = [
            BucketState(rule, int(tail[2 * i]), int(tail[2 * i + 1]) / 1000.0) for i, rule in enumerate(rules)
        ]
        self._observer.admitted(subject, states)

    def _report_waited(self, subject: RateLimitSubject, waited: float) -> None:
        if self._observer is not None and waited > 0:
            self._observer.waited(subject, waited)

    async def _report_waiting(self, subject: RateLimitSubject, wait: float) -> None:
        resume_at = self._wall() + wait
        if self._observer is not None:
            self._observer.waiting(subject, resume_at)
        if self._on_wait is not None:
            try:
                await self._on_wait(subject, resume_at)
            except Exception:  # reporting must never fail a request
                log.warning("rate limit: on_wait callback failed", exc_info=True)
