"""String templates: ``"{config.base_url}/users/{item.id}"``, compiled once, rendered many times.

Syntax: ``{expr}`` where ``expr`` is a JMESPath expression over the plan variables (see
engine.conditions.ROOTS); ``{{`` and ``}}`` are literal braces.

Rendering rules:
- A template that is exactly one ``{expr}`` keeps the value's type (:meth:`Template.value`): a number
  stays a number in a JSON body, a dict stays a dict, a missing value is None.
- Inside a longer string a value is stringified: None -> "", booleans -> "true"/"false", numbers as
  written, objects and arrays as compact JSON.
- In URLs (:meth:`Template.render_url`) the substitutions that open the URL, before any literal text,
  are inserted verbatim (``{config.base_url}`` is a whole base URL); every later substitution is
  percent-encoded as a path segment, so ``{item.id}`` = "a/b c" becomes ``a%2Fb%20c``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from engine.conditions import Expr, compile_expr, scan_quoted
from engine.errors import TemplateError
from engine.ports import JsonValue

__all__ = ["JsonTemplate", "Template", "compile_json_template", "compile_template", "stringify"]


def stringify(value: JsonValue) -> str:
    """A value as it appears inside a string."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled string template."""

    source: str
    parts: tuple[str | Expr, ...]
    # The leading substitutions that come before any literal text (verbatim in URLs).
    prefix_count: int

    @property
    def whole(self) -> Expr | None:
        """The expression when the template is exactly ``{expr}``."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expr):
            return self.parts[0]
        return None

    @property
    def exprs(self) -> tuple[Expr, ...]:
        return tuple(part for part in self.parts if isinstance(part, Expr))

    @property
    def roots(self) -> frozenset[str]:
        return frozenset().union(*(expr.roots for expr in self.exprs))

    def render(self, variables: Mapping[str, JsonValue]) -> str:
        """Render as a string."""
        parts = self.parts
        if len(parts) == 1:
            only = parts[0]
            return only if isinstance(only, str) else stringify(only.search(variables))
        return "".join(p if isinstance(p, str) else stringify(p.search(variables)) for p in parts)

    def value(self, variables: Mapping[str, JsonValue]) -> JsonValue:
        """Render keeping the type when the template is a single expression."""
        whole = self.whole
        return whole.search(variables) if whole is not None else self.render(variables)

    def render_url(self, variables: Mapping[str, JsonValue]) -> str:
        """Render a URL: leading substitutions verbatim, later ones encoded as path segments."""
        out: list[str] = []
        for index, part in enumerate(self.parts):
            if isinstance(part, str):
                out.append(part)
            elif index < self.prefix_count:
                out.append(stringify(part.search(variables)))
            else:
                out.append(quote(stringify(part.search(variables)), safe=""))
        return "".join(out)

    def render_shape(self, variables: Mapping[str, JsonValue]) -> str:
        """The URL with the leading substitutions rendered and the rest left as ``{expr}``: a key
        that names the endpoint and stays the same across fan-out items."""
        out: list[str] = []
        for index, part in enumerate(self.parts):
            if isinstance(part, str):
                out.append(part)
            elif index < self.prefix_count:
                out.append(stringify(part.search(variables)))
            else:
                out.append("{" + part.source + "}")
        return "".join(out)


def _expression_end(source: str, start: int) -> int:
    """Index of the '}' that closes the expression opened at ``start`` (just past its '{')."""
    depth = 0
    i = start
    while i < len(source):
        char = source[i]
        if char in "'\"`":
            i = scan_quoted(source, i)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise TemplateError(f"unclosed '{{' at position {start - 1} (write '{{{{' for a literal brace)")


def compile_template(source: str) -> Template:
    """Compile a template. Raises TemplateError naming the first problem."""
    parts: list[str | Expr] = []
    literal: list[str] = []
    i = 0
    n = len(source)
    while i < n:
        char = source[i]
        if char == "{" and source.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and source.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "}":
            raise TemplateError(f"unmatched '}}' at position {i} (write '}}}}' for a literal brace)")
        elif char == "{":
            end = _expression_end(source, i + 1)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(compile_expr(source[i + 1 : end]))
            i = end + 1
        else:
            literal.append(char)
            i += 1
    if literal or not parts:
        parts.append("".join(literal))
    prefix = 0
    while prefix < len(parts) and isinstance(parts[prefix], Expr):
        prefix += 1
    return Template(source, tuple(parts), prefix)


# --- JSON bodies ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonTemplate:
    """A JSON value whose string leaves are templates. Constant subtrees are kept as they are."""

    shape: Any  # dict/list nesting with Template leaves, or a constant JSON value
    templates: tuple[Template, ...]

    @property
    def roots(self) -> frozenset[str]:
        return frozenset().union(*(t.roots for t in self.templates))

    def render(self, variables: Mapping[str, JsonValue]) -> JsonValue:
        return _render_json(self.shape, variables) if self.templates else self.shape


def _render_json(node: Any, variables: Mapping[str, JsonValue]) -> JsonValue:
    if isinstance(node, Template):
        return node.value(variables)
    if isinstance(node, dict):
        return {key: _render_json(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_render_json(value, variables) for value in node]
    return node


def compile_json_template(value: JsonValue, path: str, errors: list[tuple[str, str]]) -> JsonTemplate:
    """Compile every string leaf of ``value``; problems are appended to ``errors`` as (path, msg)."""
    templates: list[Template] = []

    def walk(node: JsonValue, where: str) -> Any:
        if isinstance(node, str):
            try:
                template = compile_template(node)
            except TemplateError as exc:
                errors.append((where, exc.message))
                return node
            if not template.exprs:
                return template.render({})
            templates.append(template)
            return template
        if isinstance(node, dict):
            return {key: walk(item, f"{where}.{key}") for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, f"{where}[{index}]") for index, item in enumerate(node)]
        return node

    shape = walk(value, path)
    return JsonTemplate(shape, tuple(templates))
