"""Fibonacci backoff, its cap and jitter, and the Retry-After hint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from engine.backoff import JITTER, backoff_delay, fibonacci, parse_retry_after, retry_delay

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_fibonacci_sequence_matches_the_spec() -> None:
    assert [fibonacci(n) for n in range(1, 11)] == [1, 1, 2, 3, 5, 8, 13, 21, 34, 55]


def test_fibonacci_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        fibonacci(0)


def test_backoff_without_jitter_follows_fibonacci_and_caps_at_sixty() -> None:
    delays = [backoff_delay(n, cap_s=60, rand=lambda: 0.5) for n in range(1, 13)]
    assert delays == [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 60, 60]


@pytest.mark.parametrize("attempt", range(1, 40))
@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999999])
def test_jitter_stays_within_bounds_and_never_exceeds_the_cap(attempt: int, rand: float) -> None:
    delay = backoff_delay(attempt, cap_s=60, rand=lambda: rand)
    base = min(fibonacci(attempt), 60)
    assert base * (1 - JITTER) <= delay <= min(base * (1 + JITTER), 60)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay(10_000, cap_s=60, rand=lambda: 0.5) == 60


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("0", None),  # "no hint", not "retry immediately"
        ("-3", None),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), None),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_parses_seconds_and_dates_and_ignores_useless_hints(header: str | None, expected) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_retry_delay_prefers_a_usable_hint_and_caps_it() -> None:
    kwargs = {"cap_s": 60.0, "max_hint_s": 60.0, "now": NOW, "rand": lambda: 0.5}
    assert retry_delay(1, retry_after="7", **kwargs) == 7.0
    assert retry_delay(1, retry_after="600", **kwargs) == 60.0
    assert retry_delay(4, retry_after="0", **kwargs) == 3.0  # falls back to backoff
    past = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert retry_delay(5, retry_after=past, **kwargs) == 5.0
