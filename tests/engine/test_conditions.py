"""Bare-literal conditions, root analysis, truthiness and the plain-path fast path."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest

from engine.conditions import compile_expr, is_truthy, normalize
from engine.errors import TemplateError


@pytest.mark.parametrize(
    ("written", "standard"),
    [
        ("response.body.has_more == true", "response.body.has_more == `true`"),
        ("response.body.done != false", "response.body.done != `false`"),
        ("response.body.next == null", "response.body.next == `null`"),
        ("response.status_code >= 500", "response.status_code >= `500`"),
        ("response.body.count<10", "response.body.count<`10`"),
        ("response.body.delta > -1.5e3", "response.body.delta > `-1.5e3`"),
        ("true == response.body.ok", "`true` == response.body.ok"),
        ("response.body.items[?age > 30].name", "response.body.items[?age > `30`].name"),
        # left alone: quoted strings, backtick literals, fields named like literals, indexes
        ("response.body.state == 'true'", "response.body.state == 'true'"),
        ('response.body."true" == `1`', 'response.body."true" == `1`'),
        ("response.body.true", "response.body.true"),
        ("response.body.items[0] == `null`", "response.body.items[0] == `null`"),
        ("context.next_offset || '0'", "context.next_offset || '0'"),
        ("response.body.s == 'it''s == true'", "response.body.s == 'it''s == true'"),
        ("response.body.s == 'a\\' == 1'", "response.body.s == 'a\\' == 1'"),
    ],
)
def test_bare_literals_in_comparisons_become_json_literals(written: str, standard: str) -> None:
    assert normalize(written) == standard


@pytest.mark.parametrize(
    ("expression", "variables", "expected"),
    [
        ("response.body.has_more == true", {"response": {"body": {"has_more": True}}}, True),
        ("response.body.has_more == true", {"response": {"body": {"has_more": False}}}, False),
        ("response.status_code >= 500", {"response": {"status_code": 503}}, True),
        ("response.body.next == null", {"response": {"body": {}}}, True),
        ("response.body.state == 'true'", {"response": {"body": {"state": "true"}}}, True),
    ],
)
def test_seed_style_conditions_evaluate(expression: str, variables: dict, expected: bool) -> None:
    assert compile_expr(expression).test(variables) is expected


@pytest.mark.parametrize(
    ("expression", "roots"),
    [
        ("config.base_url", {"config"}),
        ("context.next_offset || '0'", {"context"}),
        ("response.body.items[?owner == item.id]", {"response"}),  # item inside a filter is a field
        ("sort_by(response.body.x, &name)", {"response"}),
        ("{a: config.x, b: item}", {"config", "item"}),
        ("response.body | length(@)", {"response"}),
        ("join(',', [prev.a, parent.b])", {"prev", "parent"}),
        ("confg.base_url", {"confg"}),
    ],
)
def test_roots_are_the_variables_read_at_the_top(expression: str, roots: set[str]) -> None:
    assert compile_expr(expression).roots == roots


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        ("x", True),
        ([0], True),
    ],
)
def test_truthiness_follows_jmespath(value: object, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(
    "variables",
    [
        {"config": {"base_url": "u"}},
        {"config": {}},
        {"config": None},
        {"config": "text"},
        {"config": [1, 2]},
        {"config": {"base_url": {"deep": 1}}},
        {},
    ],
)
def test_plain_path_fast_path_agrees_with_jmespath(variables: dict) -> None:
    assert compile_expr("config.base_url").search(variables) == jmespath.search("config.base_url", variables)


@pytest.mark.parametrize("bad", ["response.body[", "", "   ", "a ==", "'unterminated"])
def test_invalid_expressions_raise_template_error_naming_them(bad: str) -> None:
    with pytest.raises(TemplateError):
        compile_expr(bad)


def test_runtime_type_errors_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="cannot evaluate"):
        compile_expr("length(response.body)").search({"response": {"body": 5}})


_VALUES: list[Any] = [
    None, True, False, 0, 1, 2, -1, 0.0, 1.0, 2.5, "", "0", "a", "b", [], [0], [None, 1, None],
    [{"b": 1}, {"b": None}, 3], {}, {"b": 0}, {"b": {"c": "x"}}, {"b": [1, 2]},
]  # fmt: skip
_EXPRESSIONS = [
    "a", "a.b", "a.b.c", "a[0]", "a[1].b", "a.b[0]", "a[-1]", "@", "a[*]", "a[*].b", "a.b[*]",
    "a || b", "a || 'dflt'", "a && b", "!a", "!a.b", "a == b", "a != b", "a < b", "a <= b",
    "a > b", "a >= b", "a == `0`", "a == `false`", "a.b == true", "a == null", "a > 1",
    "a && b || c", "!(a == b)", "a.b || `[1]`",
]  # fmt: skip


@pytest.mark.parametrize("expression", _EXPRESSIONS)
def test_compiled_closures_match_the_jmespath_interpreter(expression: str) -> None:
    expr = compile_expr(expression)
    assert expr._path is not None or expr._closure is not None, "expected a fast path"
    parsed = jmespath.compile(normalize(expression))
    for a in _VALUES:
        for b in _VALUES:
            variables = {"a": a, "b": b, "c": "c"}
            try:
                expected: Any = parsed.search(variables)
            except TypeError:
                with pytest.raises(TypeError):
                    expr.search(variables)
                continue
            got = expr.search(variables)
            assert got == expected and type(got) is type(expected), (expression, a, b)


def test_expressions_with_functions_keep_the_interpreter() -> None:
    expr = compile_expr("sum([response.body.page, `1`])")
    assert expr._closure is None and expr.search({"response": {"body": {"page": 2}}}) == 3
