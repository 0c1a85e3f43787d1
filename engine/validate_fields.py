"""Field-level checks for plan validation: types, ranges, status lists, templates, expressions and
which variables they may read. engine.validate builds the plan structure on top of these.

Each check records a FieldError (path + message) and returns a usable fallback, so validation goes
on and reports every problem in one pass.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from engine.conditions import ROOTS, Expr, compile_expr
from engine.errors import FieldError, TemplateError
from engine.templates import Template, compile_template
from settings.model import ExecutionLimits

__all__ = [
    "FANOUT_ROOTS",
    "OPTIONAL_STRINGS",
    "REQUEST_ROOTS",
    "FieldChecker",
    "describe",
    "is_int",
    "is_number",
]

# proto3 prints unset strings as "": these fields treat "" as absent.
OPTIONAL_STRINGS = frozenset(
    {"integration", "description", "auth_flow_id", "name", "method", "while", "abort_when", "retry_when",
     "break_when", "iterate_over", "fanout_emit_mode", "scope", "backoff"}
)  # fmt: skip
REQUEST_ROOTS = frozenset({"config", "auth", "context", "prev"})
FANOUT_ROOTS = frozenset({"parent", "item"})


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FieldChecker:
    """Collects FieldErrors while checking the fields of a plan document."""

    def __init__(self, limits: ExecutionLimits) -> None:
        self.limits = limits
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    # --- generic checks ---------------------------------------------------------------------

    def obj(self, value: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any] | None:
        """Check an object and report its unknown fields; None if it is not an object."""
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object, got {describe(value)}")
            return None
        cleaned: dict[str, Any] = {k: v for k, v in value.items() if not (v == "" and k in OPTIONAL_STRINGS)}
        for key in cleaned:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.error(f"{path}.{key}" if path else str(key), f"unknown field{suffix}")
        return cleaned

    def string(self, data: Mapping[str, Any], key: str, path: str, *, pattern: re.Pattern[str] | None = None,
               required: bool = False) -> str | None:  # fmt: skip
        value = data.get(key)
        if value is None:
            if required:
                self.error(path, "is required")
            return None
        if not isinstance(value, str) or (required and not value):
            self.error(path, f"must be a non-empty string, got {describe(value)}")
            return None
        if pattern is not None and not pattern.match(value):
            self.error(path, f"{value!r} must match {pattern.pattern}")
            return None
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, *, minimum: float,
               integer: bool = False, maximum: float | None = None) -> Any:  # fmt: skip
        value = data.get(key)
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        ok = is_int(value) if integer else is_number(value)
        if not ok or value < minimum or (maximum is not None and value > maximum):
            bound = f" between {minimum:g} and {maximum:g}" if maximum is not None else f" >= {minimum:g}"
            self.error(path, f"must be {kind}{bound}, got {value!r}")
            return None
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, got {describe(value)}")
            return default
        return value

    def statuses(self, value: Any, path: str) -> frozenset[int]:
        if value is None:
            return frozenset()
        if not isinstance(value, list):
            self.error(path, f"must be an array of HTTP status codes, got {describe(value)}")
            return frozenset()
        codes: set[int] = set()
        for index, code in enumerate(value):
            if not is_int(code) or not 100 <= code <= 599:
                self.error(f"{path}[{index}]", f"must be an HTTP status code (100-599), got {code!r}")
            else:
                codes.add(code)
        return frozenset(codes)

    # --- variables ----------------------------------------------------------------------------

    def roots(self, found: frozenset[str], path: str, allowed: frozenset[str]) -> None:
        for root in sorted(found - allowed):
            if root not in ROOTS:
                hint = difflib.get_close_matches(root, sorted(ROOTS), n=1)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.error(
                    path, f"unknown variable '{root}'{suffix}; variables are {', '.join(sorted(ROOTS))}"
                )
            elif root in FANOUT_ROOTS:
                self.error(path, f"variable '{root}' is only available in sub-steps")
            elif root == "response":
                self.error(path, "variable 'response' is not available while building a request "
                                 "(use 'prev' for the previous response)")  # fmt: skip
            else:
                self.error(path, f"variable '{root}' is not available here")

    def template(self, value: Any, path: str, allowed: frozenset[str]) -> Template | None:
        if is_number(value) or isinstance(value, bool):
            value = orjson.dumps(value).decode()  # "limit": 100 means the text "100"
        if not isinstance(value, str):
            self.error(path, f"must be a string template, got {describe(value)}")
            return None
        try:
            template = compile_template(value)
        except TemplateError as exc:
            self.error(path, exc.message)
            return None
        self.roots(template.roots, path, allowed)
        return template

    def expr(self, value: Any, path: str, allowed: frozenset[str]) -> Expr | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(path, f"must be a JMESPath expression string, got {describe(value)}")
            return None
        try:
            compiled = compile_expr(value)
        except TemplateError as exc:
            self.error(path, exc.message)
            return None
        self.roots(compiled.roots, path, allowed)
        return compiled

    def template_map(
        self, value: Any, path: str, allowed: frozenset[str]
    ) -> tuple[tuple[str, Template], ...]:
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object of string templates, got {describe(value)}")
            return ()
        out: list[tuple[str, Template]] = []
        for name, raw in value.items():
            template = self.template(raw, f"{path}.{name}", allowed)
            if template is not None:
                out.append((name, template))
        return tuple(out)

    def expr_map(self, value: Any, path: str, allowed: frozenset[str]) -> tuple[tuple[str, Expr], ...]:
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object of JMESPath expressions, got {describe(value)}")
            return ()
        out: list[tuple[str, Expr]] = []
        for name, raw in value.items():
            if not name:
                self.error(path, "field names must not be empty")
            compiled = self.expr(raw, f"{path}.{name}", allowed)
            if compiled is not None:
                out.append((name, compiled))
        return tuple(out)
