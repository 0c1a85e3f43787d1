"""Read an API's rate-limit headers: how much budget is left, when it comes back, how long to pause.

Pure functions; the current time is passed in. Understood, in this order of preference:
- the config's own header names (``configs.rate_limit_headers``), when it overrides them;
- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (and the ``X-Rate-Limit-*`` spelling);
- the IETF drafts: separate ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` fields (draft 00-06),
  one ``RateLimit: limit=100, remaining=50, reset=30`` dictionary (draft 07), or the structured
  list ``RateLimit: "default";r=50;t=30`` with ``RateLimit-Policy: "default";q=100;w=60``
  (draft 08+); the older policy form ``RateLimit-Policy: 100;w=60`` too;
- ``Retry-After``: delta seconds or an HTTP date.

A reset value is detected by its shape unless the config names its format: a number of at least
1e12 is epoch milliseconds, at least 1e9 epoch seconds, anything smaller a delta in seconds; text
is an HTTP date (or ISO 8601). Everything unreadable is ignored, never guessed: a sloppy header must
not turn into a pause of years or a retry storm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, get_args

__all__ = [
    "DEFAULT_HEADER_NAMES",
    "HeaderNames",
    "RateLimitInfo",
    "ResetFormat",
    "parse_rate_limit_headers",
    "parse_reset",
    "parse_retry_after_header",
]

ResetFormat = Literal["auto", "delta_seconds", "epoch_seconds", "epoch_millis", "http_date"]
_RESET_FORMATS: frozenset[str] = frozenset(get_args(ResetFormat))

_EPOCH_SECONDS_MIN = 1e9  # 2001-09-09: no window is that long, so such a number is a timestamp
_EPOCH_MILLIS_MIN = 1e12
# A reset or Retry-After further away than this is treated as unreadable (a bug upstream).
MAX_HINT_S = 7 * 24 * 3600.0

_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class HeaderNames:
    """The X-RateLimit-style header names a config reads, lower case (the config's override)."""

    remaining: str = "x-ratelimit-remaining"
    limit: str = "x-ratelimit-limit"
    reset: str = "x-ratelimit-reset"
    reset_format: ResetFormat = "auto"
    retry_after: str = "retry-after"

    @classmethod
    def from_config(cls, value: Mapping[str, object] | None) -> HeaderNames:
        """From ``configs.rate_limit_headers`` (the proto's RateLimitHeaders field names); empty
        or unknown fields keep the defaults."""
        if not value:
            return DEFAULT_HEADER_NAMES

        def name(key: str, default: str) -> str:
            raw = value.get(key)
            return raw.strip().lower() if isinstance(raw, str) and raw.strip() else default

        fmt = value.get("reset_format")
        reset_format: ResetFormat = fmt if isinstance(fmt, str) and fmt in _RESET_FORMATS else "auto"  # type: ignore[assignment]
        base = DEFAULT_HEADER_NAMES
        return cls(
            remaining=name("remaining_header", base.remaining),
            limit=name("limit_header", base.limit),
            reset=name("reset_header", base.reset),
            reset_format=reset_format,
            retry_after=name("retry_after_header", base.retry_after),
        )


DEFAULT_HEADER_NAMES = HeaderNames()


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one response says about the budget. Every field is None when not stated."""

    limit: int | None = None
    remaining: int | None = None
    reset_after_s: float | None = None  # seconds from the response until the window resets
    window_s: float | None = None  # the policy's window, when stated (RateLimit-Policy w=)
    retry_after_s: float | None = None  # positive seconds to pause, from Retry-After
    style: str = ""  # which family was read: "custom", "x", "ietf", "" (none)

    @property
    def empty(self) -> bool:
        return self.remaining is None and self.limit is None and self.retry_after_s is None

    def reset_at(self, now: float) -> float | None:
        return None if self.reset_after_s is None else now + self.reset_after_s


# --- single values ---------------------------------------------------------------------------


def _number(value: str | None) -> float | None:
    """The first number of a header value ("100", "100, 1000;w=3600", " 42 ")."""
    if value is None:
        return None
    match = _NUMBER.match(value)
    if match is None:
        return None
    number = float(match.group(1))
    return number if math.isfinite(number) else None


def _count(value: str | None) -> int | None:
    number = _number(value)
    if number is None:
        return None
    return max(0, int(number))


def _date_seconds(text: str, now: float) -> float | None:
    when: datetime | None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now


def parse_reset(value: str | None, *, now: float, fmt: ResetFormat = "auto") -> float | None:
    """Seconds from ``now`` (epoch seconds) until the reset a header states, >= 0; None when the
    value is missing or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if fmt == "http_date":
        seconds = _date_seconds(text, now)
    else:
        number = _number(text) if _NUMBER.fullmatch(text.split(",")[0].split(";")[0]) else None
        if number is None:
            seconds = _date_seconds(text, now) if fmt == "auto" else None
        elif fmt == "delta_seconds":
            seconds = number
        elif fmt == "epoch_seconds":
            seconds = number - now
        elif fmt == "epoch_millis" or number >= _EPOCH_MILLIS_MIN:
            seconds = number / 1000.0 - now
        elif number >= _EPOCH_SECONDS_MIN:
            seconds = number - now
        else:
            seconds = number
    if seconds is None or seconds != seconds or seconds > MAX_HINT_S:
        return None
    return max(0.0, seconds)


def parse_retry_after_header(value: str | None, *, now: float) -> float | None:
    """Positive seconds to pause from Retry-After (delta seconds or HTTP date), else None. Zero, a
    past date and garbage all mean "no hint"."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    number = _number(text)
    seconds = number if number is not None and _NUMBER.fullmatch(text) else _date_seconds(text, now)
    if seconds is None or seconds != seconds or seconds <= 0 or seconds > MAX_HINT_S:
        return None
    return seconds


# --- IETF structured fields ---------------------------------------------------------------------


def _members(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a structured-field list/dictionary into (item, params) pairs; quotes are dropped.
    ``limit=100, remaining=5`` gives [("limit=100", {}), ...]; ``"a";r=5;t=3`` gives [("a", {r, t})]."""
    out: list[tuple[str, dict[str, str]]] = []
    for member in value.split(","):
        parts = [part.strip() for part in member.split(";")]
        if not parts or (not parts[0] and len(parts) == 1):
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            key, _, raw = part.partition("=")
            params[key.strip().lower()] = raw.strip().strip('"')
        out.append((parts[0].strip('"'), params))
    return out


def _ietf_combined(value: str, now: float) -> tuple[int | None, int | None, float | None]:
    """(limit, remaining, reset seconds) from a ``RateLimit`` field of draft 07 or 08+."""
    members = _members(value)
    pairs = {}
    for item, _ in members:
        key, eq, raw = item.partition("=")
        if eq:
            pairs[key.strip().lower()] = raw.strip()
    if pairs:  # draft 07 dictionary
        return (
            _count(pairs.get("limit")),
            _count(pairs.get("remaining")),
            parse_reset(pairs.get("reset"), now=now, fmt="delta_seconds"),
        )
    best: tuple[int | None, int | None, float | None] = (None, None, None)
    for _, params in members:  # draft 08+: one item per policy; the tightest one rules
        remaining = _count(params.get("r"))
        if remaining is None:
            continue
        if best[1] is None or remaining < best[1]:
            best = (None, remaining, parse_reset(params.get("t"), now=now, fmt="delta_seconds"))
    return best


def _ietf_policy(value: str | None) -> tuple[int | None, float | None]:
    """(quota, window seconds) from ``RateLimit-Policy``: ``100;w=60`` or ``"p";q=100;w=60``."""
    if not value:
        return None, None
    for item, params in _members(value):
        quota = _count(params.get("q")) if "q" in params else _count(item)
        if quota is not None:
            window = _number(params.get("w"))
            return quota, window if window is not None and window > 0 else None
    return None, None


# --- the whole response ---------------------------------------------------------------------


def _x_family(
    headers: Mapping[str, str], names: HeaderNames, now: float
) -> tuple[int | None, int | None, float | None]:
    return (
        _count(headers.get(names.limit)),
        _count(headers.get(names.remaining)),
        parse_reset(headers.get(names.reset), now=now, fmt=names.reset_format),
    )


_X_SPELLINGS = (
    HeaderNames(),
    HeaderNames("x-rate-limit-remaining", "x-rate-limit-limit", "x-rate-limit-reset"),
    HeaderNames("ratelimit-remaining", "ratelimit-limit", "ratelimit-reset"),  # IETF drafts 00-06
)


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, now: float, names: HeaderNames = DEFAULT_HEADER_NAMES
) -> RateLimitInfo:
    """Everything a response's headers say about the rate limit. ``now`` is epoch seconds;
    header names may come in any case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = parse_retry_after_header(lowered.get(names.retry_after), now=now)
    if names.retry_after != "retry-after" and retry_after is None:
        retry_after = parse_retry_after_header(lowered.get("retry-after"), now=now)
    quota, window = _ietf_policy(lowered.get("ratelimit-policy"))

    found: tuple[int | None, int | None, float | None] = (None, None, None)
    style = ""
    candidates = [("custom", names)] if names != DEFAULT_HEADER_NAMES else []
    candidates += [("x", _X_SPELLINGS[0]), ("x", _X_SPELLINGS[1]), ("ietf", _X_SPELLINGS[2])]
    for family, spelling in candidates:  # the first family that states the remaining budget
        found = _x_family(lowered, spelling, now)
        if found[1] is not None:
            style = family
            break
    else:
        combined = lowered.get("ratelimit")
        found = _ietf_combined(combined, now) if combined else (None, None, None)
        if found[1] is not None or found[0] is not None:
            style = "ietf"
        else:  # only a limit somewhere
            limits = (_count(lowered.get(spelling.limit)) for _, spelling in candidates)
            found = (next((value for value in limits if value is not None), None), None, None)
    limit, remaining, reset = found
    if limit is None:
        limit = quota
    if style == "" and retry_after is None:
        return RateLimitInfo(limit=limit, window_s=window if limit is not None else None)
    return RateLimitInfo(
        limit=limit, remaining=remaining, reset_after_s=reset, window_s=window,
        retry_after_s=retry_after, style=style,
    )  # fmt: skip
