"""Table tests for monitoring.calc: rates, ETAs, projections and alert transitions."""

from __future__ import annotations

import pytest

from monitoring.calc import (
    AlertChange,
    Sample,
    alert_change,
    consumption_rate_per_minute,
    exhaustion_projection_seconds,
    recovery_eta_seconds,
    severity_for,
    state_metrics,
    utilization,
)

NOW = 10_000.0


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], 0.0),
        ([Sample(NOW, 50)], 0.0),
        ([Sample(NOW - 60, 100), Sample(NOW, 40)], 60.0),
        ([Sample(NOW - 30, 100), Sample(NOW, 90)], 20.0),
        # a reset (rise) in between uses nothing; the drops on both sides count
        ([Sample(NOW - 120, 30), Sample(NOW - 60, 0), Sample(NOW - 59, 100), Sample(NOW, 70)], 60 * 60 / 120),
        # older than the 5-minute horizon is ignored
        ([Sample(NOW - 900, 1000), Sample(NOW - 60, 100), Sample(NOW, 40)], 60.0),
        ([Sample(NOW, 100), Sample(NOW, 10)], 0.0),  # no time between samples
        ([Sample(NOW, 10), Sample(NOW - 60, 70)], 60.0),  # order does not matter
    ],
)
def test_consumption_rate(samples, expected) -> None:
    assert consumption_rate_per_minute(samples, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("remaining", "reset_at", "expected"),
    [
        (5, NOW + 30, 0.0),
        (0, NOW + 30, 30.0),
        (0, NOW - 5, 0.0),
        (0, None, None),
        (None, None, None),
        (None, NOW + 9, 9.0),
    ],
)
def test_recovery_eta(remaining, reset_at, expected) -> None:
    assert recovery_eta_seconds(remaining, reset_at, now=NOW) == expected


@pytest.mark.parametrize(
    ("remaining", "rate", "reset_at", "expected"),
    [
        (60, 60.0, None, 60.0),
        (60, 60.0, NOW + 120, 60.0),
        (60, 60.0, NOW + 30, None),  # resets before it runs out
        (60, 0.0, None, None),  # nothing used
        (0, 10.0, NOW + 5, 0.0),
        (None, 10.0, None, None),
    ],
)
def test_exhaustion_projection(remaining, rate, reset_at, expected) -> None:
    assert exhaustion_projection_seconds(remaining, rate, reset_at, now=NOW) == expected


@pytest.mark.parametrize(
    ("remaining", "limit", "expected"),
    [
        (100, 100, None), (20, 100, None), (19, 100, "WARNING"), (10, 100, "WARNING"),
        (9, 100, "CRITICAL"), (0, 100, "CRITICAL"), (None, 100, None), (5, None, None), (5, 0, None),
    ],
)  # fmt: skip
def test_severity(remaining, limit, expected) -> None:
    assert severity_for(remaining, limit) == expected


@pytest.mark.parametrize(
    ("open_severity", "remaining", "expected"),
    [
        (None, 50, None),
        (None, 19, AlertChange("opened", "WARNING")),
        (None, 5, AlertChange("opened", "CRITICAL")),
        ("WARNING", 15, None),
        ("WARNING", 9, AlertChange("escalated", "CRITICAL")),
        ("CRITICAL", 15, None),  # never de-escalates
        ("CRITICAL", 5, None),
        ("CRITICAL", 20, AlertChange("resolved", "CRITICAL")),
        ("WARNING", 100, AlertChange("resolved", "WARNING")),
        ("WARNING", None, None),  # unknown: no change
    ],
)
def test_alert_change(open_severity, remaining, expected) -> None:
    assert alert_change(open_severity, remaining, 100) == expected


def test_alert_change_with_hysteresis() -> None:
    assert alert_change("WARNING", 22, 100, resolve_ratio=0.25) is None
    assert alert_change("WARNING", 25, 100, resolve_ratio=0.25) == AlertChange("resolved", "WARNING")


def test_utilization() -> None:
    assert utilization(25, 100) == 0.75
    assert utilization(None, 100) is None
    assert utilization(150, 100) == 0.0


def test_state_metrics_combines() -> None:
    metrics = state_metrics([Sample(NOW - 60, 100)], 40, NOW + 600, now=NOW)
    assert metrics.consumption_rate_per_minute == pytest.approx(60.0)
    assert metrics.recovery_eta_seconds == 0.0
    assert metrics.exhaustion_projection_seconds == pytest.approx(40.0)
