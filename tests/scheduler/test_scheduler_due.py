"""scheduler/due.py: table tests of the pure due decisions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.due import MIN_WAKE_S, NEVER_RAN_DUE_AT, PairState, due_at, is_due, next_wake_s, select_due

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PAIR = PairState(
    tenant_id="t1",
    plan_id=uuid.uuid4(),
    plan_key="contacts",
    config_id=uuid.uuid4(),
    integration="crm",
    wait_seconds=60,
    last_started_at=T0,
)


@pytest.mark.parametrize(
    ("changes", "now", "expected"),
    [
        ({}, T0 + timedelta(seconds=59), False),
        ({}, T0 + timedelta(seconds=60), True),
        ({}, T0 + timedelta(hours=5), True),
        ({"last_started_at": None}, T0, True),
        ({"plan_enabled": False}, T0 + timedelta(hours=1), False),
        ({"config_enabled": False}, T0 + timedelta(hours=1), False),
        ({"wait_seconds": None}, T0 + timedelta(hours=1), False),
        ({"active": True}, T0 + timedelta(hours=1), False),
        ({"active": True, "last_started_at": None}, T0, False),
        ({"wait_seconds": 0}, T0, True),
        ({"wait_seconds": -5}, T0, True),
    ],
)
def test_is_due(changes: dict[str, object], now: datetime, expected: bool) -> None:
    assert is_due(replace(PAIR, **changes), now) is expected  # type: ignore[arg-type]


def test_due_at() -> None:
    assert due_at(PAIR) == T0 + timedelta(seconds=60)
    assert due_at(replace(PAIR, last_started_at=None)) == NEVER_RAN_DUE_AT
    assert due_at(replace(PAIR, active=True)) is None


def test_select_due_orders_most_overdue_first() -> None:
    late = replace(PAIR, plan_key="late", last_started_at=T0 - timedelta(minutes=10))
    never = replace(PAIR, plan_key="never", last_started_at=None)
    not_yet = replace(PAIR, plan_key="not-yet", last_started_at=T0 + timedelta(seconds=30))
    chosen = select_due([PAIR, not_yet, late, never], T0 + timedelta(seconds=60))
    assert [p.plan_key for p in chosen] == ["never", "late", "contacts"]


@pytest.mark.parametrize(
    ("starts", "expected"),
    [
        ([], 30.0),  # nothing scheduled: the poll interval
        ([T0 - timedelta(seconds=50)], 10.0),  # due in 10 s
        ([T0 - timedelta(seconds=50), T0 - timedelta(seconds=58)], 2.0),
        ([T0 - timedelta(seconds=120)], 30.0),  # already due: handled this tick, not a wake time
        ([T0 - timedelta(seconds=59.99)], MIN_WAKE_S),
    ],
)
def test_next_wake(starts: list[datetime], expected: float) -> None:
    pairs = [replace(PAIR, last_started_at=s) for s in starts]
    assert next_wake_s(pairs, T0, 30.0) == pytest.approx(expected)
