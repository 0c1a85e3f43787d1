"""Record observed rate-limit states, keep alerts in step with them, publish every alert change.

``RateLimitRecorder.record(observation)`` writes a state row (with the consumption rate, recovery
ETA and exhaustion projection of monitoring.calc) and, for states read from API headers, applies
the alert transition the state causes (opened / escalated / resolved). A transition is made by a
conditional write (store.rate_limit_monitor_repo), so when several workers see the same state only one of
them makes it, and only that one publishes it: each change reaches the ``rate-limit-alerts``
topic once. The publish happens after the commit; a crash between the two loses that one event
(the RPCs still show the alert).

Not every response becomes a row: per (tenant, config, endpoint, source) a state is written at
most every ``min_interval_s`` unless its alert level differs from the last one this process saw.
``LimiterMonitor`` adapts the recorder (and the Prometheus gauges) to the limiter's observer
hooks; it queues observations and a background task writes them, so requests never wait on
Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.limiter_redis import BucketState
from engine.ports import RateLimitSubject
from engine.ratelimit_headers import RateLimitInfo
from monitoring import calc
from monitoring.metrics import RateLimitMetrics
from store import rate_limit_monitor_repo, rate_limits_repo
from store.records import RateLimitAlertRecord, RateLimitObservation

__all__ = [
    "AlertEvent",
    "AlertPublisher",
    "KafkaAlertPublisher",
    "LimiterMonitor",
    "Observation",
    "RateLimitRecorder",
]

log = logging.getLogger(__name__)

Source = Literal["headers", "limiter"]


@dataclass(frozen=True, slots=True)
class Observation:
    tenant_id: str
    config_id: str
    endpoint: str  # "METHOD host/path-template"; "" for a budget of the whole config
    remaining: int | None
    limit: int | None
    reset_at: float | None  # epoch seconds
    observed_at: float  # epoch seconds
    source: Source = "headers"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert change as published on rate-limit-alerts."""

    kind: Literal["opened", "escalated", "resolved"]
    tenant_id: str
    alert: RateLimitAlertRecord

    @property
    def key(self) -> str:
        return f"{self.tenant_id}:{self.alert.config_id}:{self.alert.endpoint}"

    def to_json(self) -> dict[str, object]:
        alert = self.alert
        return {
            "type": f"rate_limit_alert.{self.kind}",
            "tenant_id": self.tenant_id,
            "alert_id": str(alert.id),
            "config_id": str(alert.config_id),
            "endpoint": alert.endpoint,
            "severity": alert.severity,
            "remaining": alert.remaining,
            "limit": alert.limit,
            "message": alert.message,
            "opened_at": _rfc3339(alert.opened_at),
            "resolved_at": _rfc3339(alert.resolved_at) if alert.resolved_at else None,
            "timestamp": _rfc3339(datetime.now(UTC)),
        }


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertPublisher(Protocol):
    async def publish(self, event: AlertEvent) -> None: ...


class KafkaAlertPublisher:
    """Publishes alert events with an aiokafka producer the caller starts and stops."""

    def __init__(self, producer: object, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, event: AlertEvent) -> None:
        value = json.dumps(event.to_json()).encode()
        headers = [
            ("tenant_id", event.tenant_id.encode()),
            ("type", f"rate_limit_alert.{event.kind}".encode()),
        ]
        await self._producer.send_and_wait(  # type: ignore[attr-defined]
            self._topic, value=value, key=event.key.encode(), headers=headers
        )


def _message(severity: str, remaining: int | None, limit: int | None) -> str:
    share = 100.0 * (remaining or 0) / limit if limit else 0.0
    return f"{severity}: {remaining} of {limit} requests left ({share:.0f}%)"


class RateLimitRecorder:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: AlertPublisher | None = None,
        *,
        metrics: RateLimitMetrics | None = None,
        min_interval_s: float = 5.0,
        resolve_ratio: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._metrics = metrics
        self._min_interval_s = min_interval_s
        self._resolve_ratio = resolve_ratio
        self._clock = clock
        self._last: dict[tuple[str, str, str, str], tuple[float, str | None]] = {}
        self._skipped: dict[tuple[str, str, str, str], Observation] = {}

    async def flush(self) -> None:
        """Write the latest observation of every key that was skipped by the throttle."""
        skipped, self._skipped = self._skipped, {}
        for obs in skipped.values():
            self._last.pop((obs.tenant_id, obs.config_id, obs.endpoint, obs.source), None)
            await self.record(obs)

    async def record(self, obs: Observation) -> list[AlertEvent]:
        """Record one observation (if due) and return the alert changes this call made."""
        if self._metrics is not None:
            self._metrics.set_state(
                obs.tenant_id,
                obs.config_id,
                obs.endpoint,
                obs.source,
                obs.remaining,
                calc.utilization(obs.remaining, obs.limit),
            )
        try:
            config_id = UUID(obs.config_id)
        except ValueError:
            return []  # not a stored config (ad-hoc runs): gauges only
        level = calc.severity_for(obs.remaining, obs.limit)
        key = (obs.tenant_id, obs.config_id, obs.endpoint, obs.source)
        last = self._last.get(key)
        if last is not None and obs.observed_at - last[0] < self._min_interval_s and last[1] == level:
            self._skipped[key] = obs
            return []
        self._last[key] = (obs.observed_at, level)
        self._skipped.pop(key, None)
        async with self._sessions.begin() as session:
            await self._write_state(session, config_id, obs)
            events = await self._apply_alerts(session, config_id, obs) if obs.source == "headers" else []
        for event in events:
            log.info(
                "rate-limit alert %s: %s %s (%s)",
                event.kind,
                obs.endpoint,
                event.alert.severity,
                obs.tenant_id,
            )
            if self._publisher is not None:
                await self._publisher.publish(event)
        return events

    async def _write_state(self, session: AsyncSession, config_id: UUID, obs: Observation) -> None:
        now = obs.observed_at
        since = datetime.fromtimestamp(now - calc.RATE_HORIZON_S, UTC)
        rows = await rate_limit_monitor_repo.recent_samples(
            session, obs.tenant_id, config_id, obs.endpoint, since=since, source=obs.source
        )
        history = [calc.Sample(at.timestamp(), remaining) for at, remaining in rows]
        metrics = calc.state_metrics(history, obs.remaining, obs.reset_at, now=now)
        await rate_limits_repo.record_state(
            session,
            obs.tenant_id,
            RateLimitObservation(
                config_id=config_id,
                endpoint=obs.endpoint,
                observed_at=datetime.fromtimestamp(now, UTC),
                remaining=obs.remaining,
                limit=obs.limit,
                reset_at=datetime.fromtimestamp(obs.reset_at, UTC) if obs.reset_at is not None else None,
                consumption_rate_per_minute=metrics.consumption_rate_per_minute,
                recovery_eta_seconds=metrics.recovery_eta_seconds,
                exhaustion_projection_seconds=metrics.exhaustion_projection_seconds,
                source=obs.source,
            ),
        )

    async def _apply_alerts(
        self, session: AsyncSession, config_id: UUID, obs: Observation
    ) -> list[AlertEvent]:
        current = await rate_limit_monitor_repo.open_severity(session, obs.tenant_id, config_id, obs.endpoint)
        change = calc.alert_change(current, obs.remaining, obs.limit, resolve_ratio=self._resolve_ratio)
        if change is None:
            return []
        tenant, endpoint = obs.tenant_id, obs.endpoint
        message = _message(change.severity, obs.remaining, obs.limit)
        alert: RateLimitAlertRecord | None
        if change.kind == "opened":
            alert = await rate_limit_monitor_repo.open_alert_if_none(
                session,
                tenant,
                config_id=config_id,
                endpoint=endpoint,
                severity=change.severity,
                remaining=obs.remaining,
                limit=obs.limit,
                message=message,
            )
        elif change.kind == "escalated":
            alert = await rate_limit_monitor_repo.escalate_alert(
                session,
                tenant,
                config_id=config_id,
                endpoint=endpoint,
                remaining=obs.remaining,
                limit=obs.limit,
                message=message,
            )
        else:
            alert = await rate_limit_monitor_repo.resolve_alert(
                session, tenant, config_id=config_id, endpoint=endpoint
            )
        return [] if alert is None else [AlertEvent(change.kind, obs.tenant_id, alert)]


class LimiterMonitor:
    """The limiter's observer: gauges at once, states and alerts through a background writer.

    ``start()`` the writer, ``aclose()`` to drain it. Observations beyond ``max_queue`` waiting
    are dropped (the next one carries the same information)."""

    def __init__(
        self,
        recorder: RateLimitRecorder,
        metrics: RateLimitMetrics | None = None,
        *,
        max_queue: int = 1000,
        flush_interval_s: float = 5.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._recorder = recorder
        self._flush_interval_s = flush_interval_s
        self._metrics = metrics
        self._queue: asyncio.Queue[Observation] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._wall = wall

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="rate-limit-recorder")

    async def aclose(self) -> None:
        if self._task is None:
            return
        await self._queue.join()
        try:
            await self._recorder.flush()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("rate-limit states not recorded: %s", exc)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _drain(self) -> None:
        """Record observations as they come; every ``flush_interval_s`` also write the ones the
        recorder's throttle held back (a state that resolves an alert another worker opened
        must not wait for the next observation of its endpoint)."""
        next_flush = time.monotonic() + self._flush_interval_s
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_flush - time.monotonic())):
                    obs = await self._queue.get()
            except TimeoutError:
                next_flush = time.monotonic() + self._flush_interval_s
                await self._guarded(self._recorder.flush())
                continue
            try:
                await self._guarded(self._recorder.record(obs))
            finally:
                self._queue.task_done()

    @staticmethod
    async def _guarded(work: Awaitable[object]) -> None:
        try:
            await work
        except (SQLAlchemyError, OSError) as exc:
            log.warning("rate-limit state not recorded: %s", exc)
        except Exception:
            log.exception("rate-limit recorder failed")

    def _submit(self, obs: Observation) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(obs)

    # --- LimiterObserver ------------------------------------------------------------------------

    def waiting(self, subject: RateLimitSubject, resume_at: float) -> None:
        return None

    def waited(self, subject: RateLimitSubject, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.add_wait(subject.tenant_id, seconds)

    def admitted(self, subject: RateLimitSubject, states: Sequence[BucketState]) -> None:
        now = self._wall()
        for state in states:
            endpoint = subject.endpoint if state.rule.scope == "per_endpoint" else ""
            self._submit(
                Observation(
                    subject.tenant_id,
                    subject.config_id,
                    endpoint,
                    state.remaining,
                    state.rule.requests,
                    state.reset_at,
                    now,
                    "limiter",
                )
            )

    def observed(self, subject: RateLimitSubject, status_code: int, info: RateLimitInfo) -> None:
        if info.remaining is None and info.limit is None:
            return
        now = self._wall()
        self._submit(
            Observation(
                subject.tenant_id,
                subject.config_id,
                subject.endpoint,
                info.remaining,
                info.limit,
                info.reset_at(now),
                now,
                "headers",
            )
        )
