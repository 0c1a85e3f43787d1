"""Retry timing: Fibonacci backoff with jitter, and the server's Retry-After hint.

Pure functions. Randomness and the current time are passed in, so tests get exact numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["JITTER", "backoff_delay", "fibonacci", "parse_retry_after", "retry_delay"]

# Each delay is scaled by a factor in [1 - JITTER, 1 + JITTER): enough to spread a herd of
# workers that failed together, small enough to keep the Fibonacci shape.
JITTER = 0.2


def fibonacci(attempt: int) -> int:
    """The base delay in seconds before retry ``attempt`` (1-based): 1, 1, 2, 3, 5, 8, 13..."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    previous, current = 0, 1
    for _ in range(attempt - 1):
        previous, current = current, previous + current
        if current > 1 << 32:  # far above any cap; stop growing
            break
    return current


def backoff_delay(attempt: int, *, cap_s: float, rand: Callable[[], float]) -> float:
    """Fibonacci delay for retry ``attempt`` with jitter, never above ``cap_s``."""
    base = min(float(fibonacci(attempt)), cap_s)
    jittered = base * (1.0 - JITTER + 2.0 * JITTER * rand())
    return max(0.0, min(jittered, cap_s))


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None.

    0, a negative number, a date in the past and an unreadable value all mean "no hint": the
    caller then uses its normal backoff. Treating them as "retry now" would turn a struggling
    server's sloppy header into a retry storm."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until(text, now)
    if seconds is None or seconds != seconds or seconds <= 0:  # NaN, zero, past
        return None
    return seconds


def _seconds_until(text: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def retry_delay(
    attempt: int,
    *,
    retry_after: str | None,
    cap_s: float,
    max_hint_s: float,
    now: datetime,
    rand: Callable[[], float],
) -> float:
    """Seconds to sleep before retry ``attempt``: the server's Retry-After when it gives a usable
    one (at most ``max_hint_s``), else the jittered Fibonacci backoff capped at ``cap_s``."""
    hint = parse_retry_after(retry_after, now=now)
    if hint is not None:
        return min(hint, max_hint_s)
    return backoff_delay(attempt, cap_s=cap_s, rand=rand)
