"""A server-side rate limiter for mock routes: answers 429 over the limit and counts everything.

``rate_limited(limit, window_s, responder)`` wraps a responder. Every response carries the
rate-limit headers a real API sends (``X-RateLimit-*``, the IETF ``RateLimit`` /
``RateLimit-Policy`` fields, or both), and a 429 carries ``Retry-After``. Tests assert on the
counts: ``max_in_any_window()`` is the most requests received in any sliding window of
``window_s`` (the strictest reading of "never more than N per window").
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mockapi.model import MockResponse, RecordedRequest, Responder
from mockapi.responders import json, resolve

__all__ = ["RateLimited", "max_in_any_window", "rate_limited"]

HeaderStyle = Literal["x", "ietf", "both", "none"]


def max_in_any_window(timestamps: list[float], window_s: float) -> int:
    """The most timestamps that fall within any half-open window [t, t + window_s)."""
    ordered = sorted(timestamps)
    best = start = 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class RateLimited:
    """Wraps a responder with a ``limit`` per ``window_s`` budget.

    mode "fixed": windows aligned on the wall clock (floor(now / window_s)), the way most APIs
    count and what X-RateLimit-Reset (epoch seconds of the window's end) describes.
    mode "sliding": admit only if fewer than ``limit`` were admitted in the last ``window_s``.
    """

    limit: int
    window_s: float
    responder: Responder
    mode: Literal["fixed", "sliding"] = "fixed"
    headers: HeaderStyle = "x"
    clock: Callable[[], float] = time.time
    received: list[float] = field(default_factory=list)
    admitted: list[float] = field(default_factory=list)
    rejected: int = 0
    per_window: dict[int, int] = field(default_factory=dict)  # fixed window index -> requests received
    _admitted_per_window: dict[int, int] = field(default_factory=dict, repr=False)
    _recent: deque[float] = field(default_factory=deque, repr=False)

    def max_in_any_window(self) -> int:
        return max_in_any_window(self.received, self.window_s)

    def _state(self, now: float) -> tuple[bool, int, float]:
        """(admit?, remaining after this request, seconds until capacity frees up)."""
        if self.mode == "fixed":
            window = math.floor(now / self.window_s)
            used = self._admitted_per_window.get(window, 0)
            reset = (window + 1) * self.window_s - now
        else:
            while self._recent and self._recent[0] <= now - self.window_s:
                self._recent.popleft()
            used = len(self._recent)
            reset = (self._recent[0] + self.window_s - now) if self._recent else self.window_s
        admit = used < self.limit
        remaining = self.limit - used - (1 if admit else 0)
        return admit, max(remaining, 0), max(reset, 0.0)

    def _admit(self, now: float) -> None:
        self.admitted.append(now)
        window = math.floor(now / self.window_s)
        self._admitted_per_window[window] = self._admitted_per_window.get(window, 0) + 1
        self._recent.append(now)

    def _headers(self, now: float, remaining: int, reset: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.headers in ("x", "both"):
            headers["X-RateLimit-Limit"] = str(self.limit)
            headers["X-RateLimit-Remaining"] = str(remaining)
            headers["X-RateLimit-Reset"] = str(math.ceil(now + reset))
        if self.headers in ("ietf", "both"):
            headers["RateLimit"] = f"limit={self.limit}, remaining={remaining}, reset={math.ceil(reset)}"
            headers["RateLimit-Policy"] = f"{self.limit};w={self.window_s:g}"
        return headers

    async def __call__(self, request: RecordedRequest) -> MockResponse:
        now = self.clock()
        self.received.append(now)
        window = math.floor(now / self.window_s)
        self.per_window[window] = self.per_window.get(window, 0) + 1
        admit, remaining, reset = self._state(now)
        headers = self._headers(now, remaining, reset)
        if not admit:
            self.rejected += 1
            headers["Retry-After"] = str(max(1, math.ceil(reset)))
            return await resolve(json({"error": "rate limit exceeded"}, status=429, headers=headers), request)
        self._admit(now)
        response = await resolve(self.responder, request)
        response.headers.update(headers)
        return response


def rate_limited(
    limit: int,
    window_s: float,
    responder: Responder,
    *,
    mode: Literal["fixed", "sliding"] = "fixed",
    headers: HeaderStyle = "x",
) -> RateLimited:
    return RateLimited(limit, window_s, responder, mode=mode, headers=headers)
