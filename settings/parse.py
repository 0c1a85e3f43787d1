"""Parsers for the value formats the spec's environment variables use (``30s``, ``5m``, ``true``)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SettingsError(ValueError):
    """An environment variable holds a value Orchid cannot use; the message names the variable."""


def parse_duration(name: str, raw: str) -> float:
    """Return seconds for a Go-style duration (``30s``, ``5m``, ``1h30m``, ``250ms``) or plain seconds."""
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match["value"]) * _UNIT_SECONDS[match["unit"]]
        pos = match.end()
    if pos != len(text) or not text:
        raise SettingsError(f"{name}: {raw!r} is not a duration (examples: 30s, 5m, 1h30m, 250ms)")
    return total


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}: {raw!r} is not a boolean (true or false)")


def parse_int(name: str, raw: str, *, minimum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}: {value} is below the minimum {minimum}")
    return value


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())
