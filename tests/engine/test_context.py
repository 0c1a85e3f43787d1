"""Context updates and the 64 KB / 1 MB limits."""

from __future__ import annotations

import pytest

from engine.conditions import compile_expr
from engine.context import ContextState
from engine.errors import ContextLimitError


def _state(initial: dict | None = None, field: int = 100, total: int = 1000) -> ContextState:
    return ContextState(initial or {}, max_field_bytes=field, max_total_bytes=total)


def test_updates_all_see_the_same_response_and_replace_the_mapping() -> None:
    state = _state({"a": 1, "keep": True})
    before = state.values
    updates = (("a", compile_expr("response.body.a")), ("b", compile_expr("context.a")))
    state.apply(updates, {"response": {"body": {"a": 2}}, "context": before})
    assert state.values == {"a": 2, "b": 1, "keep": True}
    assert before == {"a": 1, "keep": True}  # an older snapshot is never mutated


def test_a_field_over_its_limit_fails_loudly_and_changes_nothing() -> None:
    state = _state({"a": 1}, field=10)
    with pytest.raises(ContextLimitError, match="'big' is 14 bytes"):
        state.apply((("big", compile_expr("response.body")),), {"response": {"body": "x" * 12}})
    assert state.values == {"a": 1}


def test_the_total_limit_is_enforced_across_fields() -> None:
    state = _state({"a": "x" * 50}, field=100, total=120)
    with pytest.raises(ContextLimitError, match="limit is 120 bytes in total"):
        state.apply((("b", compile_expr("response.body")),), {"response": {"body": "y" * 60}})
    assert set(state.values) == {"a"}


def test_an_initial_context_over_the_limit_is_refused() -> None:
    with pytest.raises(ContextLimitError):
        _state({"a": "x" * 200}, field=100)
