"""Template compilation and rendering: typing, stringification, URL encoding, escapes."""

from __future__ import annotations

import time

import pytest

from engine.errors import TemplateError
from engine.templates import compile_json_template, compile_template

VARS = {
    "config": {"base_url": "https://api.example.com/v2", "limit": 100},
    "auth": {"token": "tok"},
    "context": {},
    "item": {"id": "a/b c", "n": 7, "tags": ["x", "y"], "flag": True, "obj": {"k": 1}},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{config.limit}", 100),
        ("{item.flag}", True),
        ("{item.obj}", {"k": 1}),
        ("{item.tags}", ["x", "y"]),
        ("{item.missing}", None),
        ("{context.next_offset || '0'}", "0"),
        ("limit={config.limit}", "limit=100"),
        ("{item.flag}!", "true!"),
        ("[{item.missing}]", "[]"),
        ("{item.obj}", {"k": 1}),
        ("obj={item.obj}", 'obj={"k":1}'),
        ("Bearer {auth.token}", "Bearer tok"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_whole_value_templates_keep_their_type_and_others_are_strings(source: str, expected: object) -> None:
    assert compile_template(source).value(VARS) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{literal}} {config.limit}", "{literal} 100"),
        ("a}}b{{c", "a}b{c"),
        ('{ `{"x": 1}` | x }', "1"),
        ("{'}' }", "}"),
    ],
)
def test_braces_escape_and_nest_inside_expressions(source: str, expected: str) -> None:
    assert compile_template(source).render(VARS) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{config.base_url}/items/{item.id}", "https://api.example.com/v2/items/a%2Fb%20c"),
        ("{config.base_url}/items/{item.n}/x", "https://api.example.com/v2/items/7/x"),
        ("https://host/{item.id}?q={item.id}", "https://host/a%2Fb%20c?q=a%2Fb%20c"),
        ("{config.base_url}{item.id}", "https://api.example.com/v2a/b c"),  # both lead the URL
        ("https://host/static", "https://host/static"),
    ],
)
def test_urls_insert_the_leading_substitution_verbatim_and_encode_later_ones(
    source: str, expected: str
) -> None:
    assert compile_template(source).render_url(VARS) == expected


def test_url_shape_names_the_endpoint_without_item_values() -> None:
    template = compile_template("{config.base_url}/contacts/{item.id}/details")
    assert template.render_shape(VARS) == "https://api.example.com/v2/contacts/{item.id}/details"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{config.base_url", "unclosed"),
        ("a } b", "unmatched"),
        ("{response.body[}", "invalid JMESPath"),
        ("{}", "empty expression"),
    ],
)
def test_malformed_templates_raise_naming_the_problem(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_template(source)


def test_json_bodies_render_leaves_with_types_and_keep_constants() -> None:
    errors: list[tuple[str, str]] = []
    body = compile_json_template(
        {"id": "{item.n}", "name": "item {item.id}", "fixed": [1, "two", {"three": None}], "esc": "{{x}}"},
        "step.body",
        errors,
    )
    assert errors == []
    assert body.render(VARS) == {
        "id": 7,
        "name": "item a/b c",
        "fixed": [1, "two", {"three": None}],
        "esc": "{x}",
    }
    assert body.roots == {"item"}


def test_json_body_errors_carry_their_path() -> None:
    errors: list[tuple[str, str]] = []
    compile_json_template({"a": [{"b": "{oops["}]}, "step.body", errors)
    assert [path for path, _ in errors] == ["step.body.a[0].b"]


def test_rendering_is_fast_enough_for_the_hot_path() -> None:
    template = compile_template("{config.base_url}/contacts/{item.id}/details?x={item.n}")
    start = time.perf_counter()
    for _ in range(20_000):
        template.render_url(VARS)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"20,000 renders took {elapsed:.2f}s"
