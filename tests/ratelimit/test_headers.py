"""Table tests for engine.ratelimit_headers: every header family, reset formats, overrides."""

from __future__ import annotations

import pytest

from engine.ratelimit_headers import (
    HeaderNames,
    RateLimitInfo,
    parse_rate_limit_headers,
    parse_reset,
    parse_retry_after_header,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("30", "auto", 30.0),
        ("0", "auto", 0.0),
        ("2.5", "auto", 2.5),
        (str(int(NOW) + 45), "auto", 45.0),  # epoch seconds detected
        (str(int(NOW * 1000) + 12_000), "auto", 12.0),  # epoch millis detected
        ("Tue, 14 Nov 2023 22:14:20 GMT", "auto", 60.0),  # HTTP date
        ("2023-11-14T22:13:50Z", "auto", 30.0),  # ISO 8601
        (str(int(NOW) - 10), "auto", 0.0),  # in the past: reset now, never negative
        ("30", "delta_seconds", 30.0),
        (str(int(NOW) + 5), "epoch_seconds", 5.0),
        ("20", "epoch_seconds", 0.0),  # an override wins over detection: 1970 is long past
        (str(int(NOW * 1000) + 3000), "epoch_millis", 3.0),
        ("Tue, 14 Nov 2023 22:13:30 GMT", "http_date", 10.0),
        ("soon", "auto", None),
        ("", "auto", None),
        (None, "auto", None),
        ("30", "http_date", None),
        ("99999999", "auto", None),  # over a week of delta: unreadable, not a 3-year pause
    ],
)
def test_parse_reset(value, fmt, expected) -> None:
    got = parse_reset(value, now=NOW, fmt=fmt)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("120", 120.0),
        ("Tue, 14 Nov 2023 22:13:25 GMT", 5.0),
        ("0", None),
        ("-3", None),
        ("Tue, 14 Nov 2023 22:13:00 GMT", None),  # past
        ("later", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected) -> None:
    got = parse_retry_after_header(value, now=NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "42",
                "X-RateLimit-Reset": str(int(NOW) + 7),
            },
            RateLimitInfo(limit=100, remaining=42, reset_after_s=7.0, style="x"),
        ),
        (
            {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "30"},
            RateLimitInfo(limit=100, remaining=0, reset_after_s=30.0, style="x"),
        ),
        (
            {"X-Rate-Limit-Limit": "15", "X-Rate-Limit-Remaining": "3", "X-Rate-Limit-Reset": "60"},
            RateLimitInfo(limit=15, remaining=3, reset_after_s=60.0, style="x"),
        ),
        (  # GitHub-style multi-policy limit: the first number
            {"X-RateLimit-Limit": "100, 100;w=60", "X-RateLimit-Remaining": "99"},
            RateLimitInfo(limit=100, remaining=99, style="x"),
        ),
        (  # IETF draft 06: separate fields
            {"RateLimit-Limit": "10", "RateLimit-Remaining": "9", "RateLimit-Reset": "4"},
            RateLimitInfo(limit=10, remaining=9, reset_after_s=4.0, style="ietf"),
        ),
        (  # IETF draft 07: one dictionary + policy
            {"RateLimit": "limit=100, remaining=50, reset=30", "RateLimit-Policy": "100;w=10"},
            RateLimitInfo(limit=100, remaining=50, reset_after_s=30.0, window_s=10.0, style="ietf"),
        ),
        (  # IETF draft 08+: structured list, quota from the policy
            {"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=100;w=60'},
            RateLimitInfo(limit=100, remaining=50, reset_after_s=30.0, window_s=60.0, style="ietf"),
        ),
        (  # several policies: the tightest remaining rules
            {"RateLimit": '"burst";r=40;t=1, "day";r=7;t=3600'},
            RateLimitInfo(remaining=7, reset_after_s=3600.0, style="ietf"),
        ),
        (
            {"Retry-After": "2"},
            RateLimitInfo(retry_after_s=2.0),
        ),
        (
            {"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT", "X-RateLimit-Remaining": "0"},
            RateLimitInfo(remaining=0, retry_after_s=10.0, style="x"),
        ),
        ({"Content-Type": "application/json"}, RateLimitInfo()),
        ({"X-RateLimit-Remaining": "lots"}, RateLimitInfo()),
        ({"RateLimit-Policy": "100;w=60"}, RateLimitInfo(limit=100, window_s=60.0)),
    ],
)
def test_parse_headers(headers, expected) -> None:
    assert parse_rate_limit_headers(headers, now=NOW) == expected


def test_config_override_names_and_format() -> None:
    names = HeaderNames.from_config(
        {"remaining_header": "X-Quota-Left", "limit_header": "X-Quota", "reset_header": "X-Quota-Reset",
         "reset_format": "delta_seconds", "retry_after_header": "X-Wait"}
    )  # fmt: skip
    assert names == HeaderNames("x-quota-left", "x-quota", "x-quota-reset", "delta_seconds", "x-wait")
    info = parse_rate_limit_headers(
        {"X-Quota-Left": "5", "X-Quota": "50", "X-Quota-Reset": "1700000000", "X-Wait": "3"},
        now=NOW,
        names=names,
    )
    # delta_seconds forced: 1.7e9 seconds is unreadable rather than "epoch", so no reset
    assert info == RateLimitInfo(limit=50, remaining=5, reset_after_s=None, retry_after_s=3.0, style="custom")


def test_override_falls_back_to_standard_headers() -> None:
    names = HeaderNames.from_config({"remaining_header": "X-Quota-Left"})
    info = parse_rate_limit_headers(
        {"X-RateLimit-Remaining": "3", "X-RateLimit-Limit": "9"}, now=NOW, names=names
    )
    assert (info.remaining, info.limit, info.style) == (3, 9, "x")


def test_override_epoch_format_forced() -> None:
    names = HeaderNames.from_config({"reset_format": "epoch_seconds"})
    info = parse_rate_limit_headers(
        {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1700000020"}, now=NOW, names=names
    )
    assert info.reset_after_s == pytest.approx(20.0)


@pytest.mark.parametrize("value", [None, {}, {"reset_format": "bogus", "limit_header": ""}])
def test_from_config_defaults(value) -> None:
    assert HeaderNames.from_config(value) == HeaderNames()
