"""Keyset pagination with opaque page tokens.

A page token is URL-safe base64 of a JSON list: the sort key of the last row of the previous page
(e.g. ``["salesforce", "<uuid>"]`` or ``["2024-01-15T10:30:00+00:00", "<uuid>"]``). The next page
continues strictly after it, so pages stay stable while rows are inserted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from engine.errors import InvalidArgumentError

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "decode_token", "encode_token", "page_size"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """Clamp a client's page size: 0 (unset) means the default; above the maximum, the maximum.
    A negative size is a client bug, reported rather than guessed at."""
    if requested < 0:
        raise InvalidArgumentError(f"page_size: must be 0 (default {default}) or positive, got {requested}")
    if requested == 0:
        return default
    return min(requested, maximum)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def encode_token(key: Sequence[Any]) -> str:
    raw = json.dumps([_plain(v) for v in key], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str, kinds: Sequence[type]) -> list[Any] | None:
    """The sort key in a page token, typed by ``kinds`` (str, int, datetime or UUID); None for ""."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        return [_typed(value, kind) for value, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidArgumentError("page_token: invalid page token") from exc


def _typed(value: Any, kind: type) -> Any:
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is UUID:
        return UUID(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is int and isinstance(value, int):
        return value
    raise TypeError(f"expected {kind.__name__}")
