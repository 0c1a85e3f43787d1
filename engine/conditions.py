"""JMESPath expressions as plans write them, compiled once.

Plans write conditions the way people read them: ``response.body.has_more == true``,
``response.status_code >= 500``. Standard JMESPath reads a bare ``true`` as a field named "true"
and rejects a bare ``500``, so :func:`normalize` rewrites bare ``true``/``false``/``null`` and bare
numbers that are operands of a comparison into backtick JSON literals before compiling. It walks a
small tokenizer, so quoted strings ('raw', "quoted identifiers") and backtick literals are never
touched.

:class:`Expr` is the compiled form that the plan model stores: it knows which root variables it
reads (so validation rejects ``confg.base_url``), and evaluates plain dotted paths such as
``config.base_url`` without the JMESPath interpreter, because templates sit on the hot path.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath.parser import ParsedResult

from engine.errors import TemplateError
from engine.ports import JsonValue

__all__ = ["ROOTS", "Expr", "compile_expr", "is_truthy", "normalize", "scan_quoted"]

# The variables a plan can read. Anything else at the root of an expression is a typo.
ROOTS: frozenset[str] = frozenset({"config", "auth", "context", "response", "prev", "parent", "item"})

_COMPARATORS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_BARE_LITERALS = frozenset({"true", "false", "null"})
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")


# --- Bare literals --------------------------------------------------------------------------


def scan_quoted(text: str, start: int) -> int:
    """Return the index just past the quoted token opening at ``start`` (', " or `)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == quote:
            return i + 1
        i += 1
    raise TemplateError(f"unterminated {quote} in expression {text!r}")


def _scan_number(text: str, start: int) -> int:
    i = start + 1 if text[start] == "-" else start
    while i < len(text) and (text[i] in _DIGITS or text[i] in ".eE+-"):
        # a sign is only part of the number right after an exponent marker
        if text[i] in "+-" and text[i - 1] not in "eE":
            break
        i += 1
    return i


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, text) tokens: quoted, word, number, op, space, other."""
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            end = scan_quoted(text, i)
            yield "quoted", text[i:end]
        elif char in _IDENT_START:
            end = i + 1
            while end < n and text[end] in _IDENT_CHARS:
                end += 1
            yield "word", text[i:end]
        elif char in _DIGITS or (char == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            end = _scan_number(text, i)
            yield "number", text[i:end]
        elif text.startswith(("==", "!=", "<=", ">="), i):
            end = i + 2
            yield "op", text[i:end]
        elif char in "<>":
            end = i + 1
            yield "op", char
        elif char.isspace():
            end = i + 1
            while end < n and text[end].isspace():
                end += 1
            yield "space", text[i:end]
        else:
            end = i + 1
            yield "other", char
        i = end


def normalize(expression: str) -> str:
    """Rewrite bare true/false/null/numbers that are comparison operands into JSON literals."""
    tokens = [t for t in _tokens(expression)]
    significant = [i for i, (kind, _) in enumerate(tokens) if kind != "space"]
    out = [text for _, text in tokens]
    for pos, index in enumerate(significant):
        kind, text = tokens[index]
        if kind == "word" and text not in _BARE_LITERALS:
            continue
        if kind not in ("word", "number"):
            continue
        before = tokens[significant[pos - 1]] if pos > 0 else ("", "")
        after = tokens[significant[pos + 1]] if pos + 1 < len(significant) else ("", "")
        if before[0] == "op" or after[0] == "op":
            out[index] = f"`{text}`"
    return "".join(out)


# --- Root analysis --------------------------------------------------------------------------

# Node types whose first child is evaluated against the current value and the rest against what
# the first produced (so their fields are not roots).
_CHAINED = frozenset(
    {"subexpression", "index_expression", "projection", "value_projection", "filter_projection", "pipe"}
)


def _roots(node: Mapping[str, Any], found: set[str]) -> None:
    kind = node["type"]
    children: list[Mapping[str, Any]] = node.get("children", [])
    if kind == "field":
        found.add(node["value"])
    elif kind == "expref":
        return  # evaluated against each element, never against the variables
    elif kind in _CHAINED:
        if children:
            _roots(children[0], found)
    else:
        for child in children:
            _roots(child, found)


def _plain_path(node: Mapping[str, Any]) -> tuple[str, ...] | None:
    """``a.b.c`` as ("a", "b", "c"); None for anything that needs the interpreter."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] != "subexpression":
        return None
    path: list[str] = []
    for child in node["children"]:
        sub = _plain_path(child)
        if sub is None:
            return None
        path.extend(sub)
    return tuple(path)


# --- Closures for common expressions -----------------------------------------------------------
#
# jmespath's interpreter builds a visitor and dispatches by node type on every search (~10 us for
# ``prev.body.next_offset || '0'``). The node types below are turned into plain closures once, at
# compile time, that do exactly what jmespath.visitor.TreeInterpreter does for them; an expression
# with any other node (functions, filters, multi-selects, ...) keeps the interpreter.

Evaluator = Callable[[Any], Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _jp_equals(x: Any, y: Any) -> bool:
    """jmespath's ==: 0 and 1 never equal false and true."""
    if _is_number(x) and x in (0, 1):
        if isinstance(y, bool):
            return False
    elif _is_number(y) and y in (0, 1) and isinstance(x, bool):
        return False
    return bool(x == y)


def _jp_false(value: Any) -> bool:
    return value == "" or value == [] or value == {} or value is None or value is False


_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "gt": operator.gt,
    "lte": operator.le,
    "gte": operator.ge,
}


def _closure(node: Mapping[str, Any]) -> Evaluator | None:  # noqa: C901 - one branch per node type
    kind = node["type"]
    children: list[Mapping[str, Any]] = node.get("children", [])
    if kind == "field":
        name = node["value"]

        def field_(value: Any) -> Any:
            try:
                return value.get(name)
            except AttributeError:
                return None

        return field_
    if kind in ("current", "identity"):
        return lambda value: value
    if kind == "literal":
        constant = node["value"]
        return lambda _: constant
    if kind == "index":
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None

        return index
    parts = [_closure(child) for child in children]
    if any(part is None for part in parts):
        return None
    fns: list[Evaluator] = [part for part in parts if part is not None]
    if kind in ("subexpression", "index_expression") and fns:
        if len(fns) == 2:
            first, second = fns
            return lambda value: second(first(value))

        def chain(value: Any) -> Any:
            for fn in fns:
                value = fn(value)
            return value

        return chain
    if kind == "projection" and len(fns) == 2:
        base_of, each = fns

        def projection(value: Any) -> Any:
            base = base_of(value)
            if not isinstance(base, list):
                return None
            return [result for result in map(each, base) if result is not None]

        return projection
    if kind == "or_expression" and len(fns) == 2:
        left, right = fns

        def or_(value: Any) -> Any:
            matched = left(value)
            return right(value) if _jp_false(matched) else matched

        return or_
    if kind == "and_expression" and len(fns) == 2:
        left, right = fns

        def and_(value: Any) -> Any:
            matched = left(value)
            return matched if _jp_false(matched) else right(value)

        return and_
    if kind == "not_expression" and len(fns) == 1:
        (inner,) = fns

        def not_(value: Any) -> Any:
            result = inner(value)
            if _is_number(result) and result == 0:
                return False
            return not result

        return not_
    if kind == "comparator" and len(fns) == 2:
        return _comparator(node["value"], fns[0], fns[1])
    return None


def _comparator(op: str, left: Evaluator, right: Evaluator) -> Evaluator | None:
    if op == "eq":
        return lambda value: _jp_equals(left(value), right(value))
    if op == "ne":
        return lambda value: not _jp_equals(left(value), right(value))
    compare = _ORDERING.get(op)
    if compare is None:
        return None

    def ordering(value: Any) -> Any:
        a, b = left(value), right(value)
        if not ((_is_number(a) or isinstance(a, str)) and (_is_number(b) or isinstance(b, str))):
            return None
        return compare(a, b)

    return ordering


# --- Compiled expressions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled JMESPath expression and the root variables it reads."""

    source: str
    roots: frozenset[str]
    _parsed: ParsedResult = field(repr=False, compare=False)
    _path: tuple[str, ...] | None = field(repr=False, compare=False)
    _closure: Evaluator | None = field(default=None, repr=False, compare=False)

    def search(self, variables: Mapping[str, JsonValue]) -> JsonValue:
        """Evaluate against the variables. A missing value is None; a type error is TemplateError."""
        path = self._path
        if path is not None:
            value: JsonValue = variables
            try:
                for name in path:
                    value = value.get(name)
            except AttributeError:  # a list, string or number has no fields, as in JMESPath
                return None
            return value
        closure = self._closure
        if closure is not None:
            return closure(variables)
        try:
            return self._parsed.search(variables)
        except jmespath_errors.JMESPathError as exc:
            raise TemplateError(f"cannot evaluate {self.source!r}: {exc}") from exc

    def test(self, variables: Mapping[str, JsonValue]) -> bool:
        """Evaluate as a condition, with JMESPath truthiness."""
        return is_truthy(self.search(variables))


def compile_expr(expression: str) -> Expr:
    """Compile one expression. Raises TemplateError naming the problem (never a jmespath error)."""
    if not expression.strip():
        raise TemplateError("empty expression")
    try:
        normalized = normalize(expression)
        parsed = jmespath.compile(normalized)
    except jmespath_errors.JMESPathError as exc:
        message = _parse_message(exc)
        raise TemplateError(f"invalid JMESPath {expression!r}: {message}") from exc
    roots: set[str] = set()
    _roots(parsed.parsed, roots)
    path = _plain_path(parsed.parsed)
    return Expr(expression, frozenset(roots), parsed, path, None if path else _closure(parsed.parsed))


def _parse_message(exc: jmespath_errors.JMESPathError) -> str:
    msg = getattr(exc, "msg", None)
    position = getattr(exc, "lex_position", None)
    if isinstance(msg, str) and isinstance(position, int):
        return f"{msg} (at position {position})"
    return " ".join(str(exc).split())


def is_truthy(value: JsonValue) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True
