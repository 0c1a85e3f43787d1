"""What is due now: pure decisions, datetimes in and decisions out (no I/O).

A (plan, config) pair is due when the plan and the config are enabled, the plan has a
``wait_seconds`` schedule, none of the pair's executions is queued, running or rate limited,
and ``wait_seconds`` have passed since its last run started (a pair that never ran is due at once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

__all__ = ["MIN_WAKE_S", "NEVER_RAN_DUE_AT", "PairState", "due_at", "is_due", "next_wake_s", "select_due"]

# Never wake more often than this, however close the next due time is.
MIN_WAKE_S = 0.2
# A pair that never ran has been due since forever.
NEVER_RAN_DUE_AT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PairState:
    """What the scheduler knows about one (plan, config) pair at decision time."""

    tenant_id: str
    plan_id: UUID
    plan_key: str
    config_id: UUID
    integration: str
    wait_seconds: int | None
    plan_enabled: bool = True
    config_enabled: bool = True
    last_started_at: datetime | None = None
    active: bool = False  # an execution of the pair is queued, running or rate limited


def due_at(pair: PairState) -> datetime | None:
    """When the pair becomes due (possibly in the past), or None if the schedule cannot make
    it due: disabled, unscheduled, or already queued/running (its end is not predictable)."""
    if not (pair.plan_enabled and pair.config_enabled) or pair.wait_seconds is None or pair.active:
        return None
    if pair.last_started_at is None:
        return NEVER_RAN_DUE_AT
    return pair.last_started_at + timedelta(seconds=max(pair.wait_seconds, 0))


def is_due(pair: PairState, now: datetime) -> bool:
    moment = due_at(pair)
    return moment is not None and moment <= now


def select_due(pairs: Iterable[PairState], now: datetime) -> list[PairState]:
    """The pairs to enqueue now, most overdue first."""
    due = [(moment, pair) for pair in pairs if (moment := due_at(pair)) is not None and moment <= now]
    due.sort(key=lambda item: item[0])
    return [pair for _, pair in due]


def next_wake_s(pairs: Iterable[PairState], now: datetime, poll_interval_s: float) -> float:
    """Seconds to sleep before the next tick: the poll interval, or less when a known pair
    becomes due sooner (so a due time is met within a fraction of a second, not a whole interval)."""
    wake = poll_interval_s
    for pair in pairs:
        moment = due_at(pair)
        if moment is not None and moment > now:
            wake = min(wake, (moment - now).total_seconds())
    return max(wake, MIN_WAKE_S)
