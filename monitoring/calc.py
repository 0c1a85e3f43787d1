"""Pure rate-limit math: consumption rate, recovery ETA, exhaustion projection, alert thresholds.

Times are epoch seconds (floats). Nothing here reads a clock or does I/O.

Alert model: one alert per (tenant, config, endpoint) episode. It opens as WARNING when less than
20% of the capacity remains (or straight as CRITICAL under 10%), escalates WARNING -> CRITICAL,
never de-escalates (the severity is the highest reached), and resolves by itself once the
remaining budget is back at or above ``resolve_ratio`` of capacity (20% unless a hysteresis band
is configured).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

__all__ = [
    "CRITICAL_RATIO",
    "RATE_HORIZON_S",
    "WARNING_RATIO",
    "AlertChange",
    "Sample",
    "Severity",
    "StateMetrics",
    "alert_change",
    "consumption_rate_per_minute",
    "exhaustion_projection_seconds",
    "recovery_eta_seconds",
    "severity_for",
    "state_metrics",
    "utilization",
]

Severity = Literal["WARNING", "CRITICAL"]
WARNING_RATIO = 0.20
CRITICAL_RATIO = 0.10
# The consumption rate is measured over this much history (the RPC says "last five minutes").
RATE_HORIZON_S = 300.0

_RANK: dict[Severity | None, int] = {None: 0, "WARNING": 1, "CRITICAL": 2}


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of the remaining budget."""

    at: float
    remaining: int


def consumption_rate_per_minute(
    samples: Sequence[Sample], *, now: float, horizon_s: float = RATE_HORIZON_S
) -> float:
    """Requests per minute used over the last ``horizon_s``: the sum of the drops in ``remaining``
    between consecutive samples, divided by the time the samples span. A rise (the window reset)
    contributes nothing. Fewer than two samples, or no time between them, give 0."""
    recent = sorted((s for s in samples if now - horizon_s <= s.at <= now), key=lambda s: s.at)
    if len(recent) < 2:
        return 0.0
    span = recent[-1].at - recent[0].at
    if span <= 0:
        return 0.0
    used = sum(max(0, a.remaining - b.remaining) for a, b in pairwise(recent))
    return used * 60.0 / span


def recovery_eta_seconds(remaining: int | None, reset_at: float | None, *, now: float) -> float | None:
    """Seconds until the budget is usable again: 0 while some is left, else until the reset;
    None when neither is known."""
    if remaining is not None and remaining > 0:
        return 0.0
    if reset_at is None:
        return None
    return max(0.0, reset_at - now)


def exhaustion_projection_seconds(
    remaining: int | None, rate_per_minute: float, reset_at: float | None, *, now: float
) -> float | None:
    """Seconds until the budget runs out at ``rate_per_minute``; None when it will not run out
    before the reset (or nothing is being used, or ``remaining`` is unknown)."""
    if remaining is None:
        return None
    if remaining <= 0:
        return 0.0
    if rate_per_minute <= 0:
        return None
    seconds = remaining * 60.0 / rate_per_minute
    if reset_at is not None and now + seconds >= reset_at:
        return None
    return seconds


def utilization(remaining: int | None, limit: int | None) -> float | None:
    """Fraction of the capacity used, 0..1; None when either is unknown."""
    if remaining is None or limit is None or limit <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - remaining / limit))


def severity_for(
    remaining: int | None,
    limit: int | None,
    *,
    warning: float = WARNING_RATIO,
    critical: float = CRITICAL_RATIO,
) -> Severity | None:
    """CRITICAL under ``critical`` of capacity, WARNING under ``warning``, else None."""
    if remaining is None or limit is None or limit <= 0:
        return None
    ratio = remaining / limit
    if ratio < critical:
        return "CRITICAL"
    if ratio < warning:
        return "WARNING"
    return None


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What to do with the open alert: open a new one, escalate it, resolve it."""

    kind: Literal["opened", "escalated", "resolved"]
    severity: Severity  # the alert's severity after the change (a resolved alert keeps its own)


def alert_change(
    open_severity: Severity | None,
    remaining: int | None,
    limit: int | None,
    *,
    warning: float = WARNING_RATIO,
    critical: float = CRITICAL_RATIO,
    resolve_ratio: float | None = None,
) -> AlertChange | None:
    """The transition an observation causes, given the severity of the open alert (None: no
    alert is open). None means no change. An unknown capacity never changes anything."""
    if remaining is None or limit is None or limit <= 0:
        return None
    level = severity_for(remaining, limit, warning=warning, critical=critical)
    if open_severity is None:
        return AlertChange("opened", level) if level is not None else None
    if _RANK[level] > _RANK[open_severity]:
        assert level is not None
        return AlertChange("escalated", level)
    if remaining / limit >= (warning if resolve_ratio is None else max(resolve_ratio, warning)):
        return AlertChange("resolved", open_severity)
    return None


@dataclass(frozen=True, slots=True)
class StateMetrics:
    consumption_rate_per_minute: float
    recovery_eta_seconds: float | None
    exhaustion_projection_seconds: float | None


def state_metrics(
    history: Sequence[Sample], remaining: int | None, reset_at: float | None, *, now: float
) -> StateMetrics:
    """The derived columns of a new state, from earlier samples plus this one."""
    samples = list(history)
    if remaining is not None:
        samples.append(Sample(now, remaining))
    rate = consumption_rate_per_minute(samples, now=now)
    return StateMetrics(
        consumption_rate_per_minute=rate,
        recovery_eta_seconds=recovery_eta_seconds(remaining, reset_at, now=now),
        exhaustion_projection_seconds=exhaustion_projection_seconds(remaining, rate, reset_at, now=now),
    )
