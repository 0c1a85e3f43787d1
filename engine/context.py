"""The persistent context: state a plan carries from one execution to the next (cursors, offsets,
last-sync times), changed by ``context_updates`` after each successful response.

Limits, from the spec: 64 KB per field and 1 MB in total, both measured as compact JSON. Going over
ends the execution with ContextLimitError instead of persisting something the next run cannot
afford to load.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from engine.conditions import Expr
from engine.errors import ContextLimitError
from engine.ports import JsonValue

__all__ = ["ContextState", "json_size"]


def json_size(value: JsonValue) -> int:
    """Size of a value as compact JSON, in bytes."""
    try:
        return len(orjson.dumps(value))
    except TypeError as exc:
        raise ContextLimitError(f"context value is not JSON-serializable: {exc}") from exc


class ContextState:
    """The context of one execution. Updates replace the mapping (never mutate it), so a request
    rendered from an older snapshot keeps seeing a consistent context."""

    def __init__(
        self, initial: Mapping[str, JsonValue], *, max_field_bytes: int, max_total_bytes: int
    ) -> None:
        self._max_field = max_field_bytes
        self._max_total = max_total_bytes
        self._sizes: dict[str, int] = {}
        self.values: dict[str, JsonValue] = dict(initial)
        for name, value in self.values.items():
            self._sizes[name] = self._field_size(name, value)
        self._check_total()

    def _field_size(self, name: str, value: JsonValue) -> int:
        size = json_size(value)
        if size > self._max_field:
            raise ContextLimitError(
                f"context field {name!r} is {size} bytes as JSON; "
                f"the limit is {self._max_field} bytes per field"
            )
        return size

    def _check_total(self) -> None:
        # each field also costs its quoted name, a colon and a comma
        total = 2 + sum(size + len(name) + 4 for name, size in self._sizes.items())
        if total > self._max_total:
            raise ContextLimitError(
                f"context is {total} bytes as JSON; the limit is {self._max_total} bytes in total"
            )

    def apply(self, updates: tuple[tuple[str, Expr], ...], variables: Mapping[str, JsonValue]) -> None:
        """Evaluate every update against the same variables, then set them all at once."""
        if not updates:
            return
        new_values = {name: expr.search(variables) for name, expr in updates}
        sizes = dict(self._sizes)
        for name, value in new_values.items():
            sizes[name] = self._field_size(name, value)
        previous = self._sizes
        self._sizes = sizes
        try:
            self._check_total()
        except ContextLimitError:
            self._sizes = previous
            raise
        self.values = {**self.values, **new_values}

    def snapshot(self) -> dict[str, JsonValue]:
        return dict(self.values)
