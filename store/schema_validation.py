"""Config values against their integration's JSON Schema: validation, secret fields and masking.

Pure functions, no I/O. A property is secret when its schema carries ``"secret": true``,
``"x-secret": true`` or ``"writeOnly": true``; secrets inside nested objects (``properties`` of
``properties``) are found too. Secrets inside arrays are not tracked (a schema that needs them
should model the array's items as separate properties).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from engine.errors import InvalidArgumentError

__all__ = [
    "MASK",
    "SecretPath",
    "check_schema",
    "mask_secrets",
    "merge_kept_secrets",
    "secret_paths",
    "transform_secrets",
    "validate_values",
]

MASK = "********"
SECRET_MARKERS = ("secret", "x-secret", "writeOnly")

SecretPath = tuple[str, ...]
Json = dict[str, Any]


def check_schema(schema: Mapping[str, Any] | None) -> None:
    """Raise InvalidArgumentError when ``schema`` is not a valid draft 2020-12 JSON Schema."""
    if not schema:
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = _format_path("config_schema", exc.path)
        raise InvalidArgumentError(f"{where}: {exc.message}") from exc


def secret_paths(schema: Mapping[str, Any] | None) -> list[SecretPath]:
    """Paths of every secret property, e.g. ``[("api_key",), ("oauth", "client_secret")]``."""
    return sorted(_walk_secrets(schema or {}, ()))


def _walk_secrets(schema: Mapping[str, Any], prefix: SecretPath) -> Iterator[SecretPath]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        path = (*prefix, str(name))
        if any(sub.get(marker) is True for marker in SECRET_MARKERS):
            yield path
        else:
            yield from _walk_secrets(sub, path)


def validate_values(schema: Mapping[str, Any] | None, values: Mapping[str, Any]) -> None:
    """Raise InvalidArgumentError listing every violation as ``values.<path>: <message>``.

    Messages for secret fields never quote the value."""
    if not schema:
        return
    secrets = set(secret_paths(schema))
    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(str(p) for p in error.absolute_path)
        is_secret = any(path[: len(s)] == s for s in secrets)
        message = f"does not satisfy {error.validator!r} (value hidden)" if is_secret else error.message
        problems.append(f"{_format_path('values', error.absolute_path)}: {message}")
    if problems:
        raise InvalidArgumentError("invalid config values: " + "; ".join(problems))


def _format_path(root: str, parts: Sequence[Any]) -> str:
    out = root
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_MISSING = object()


def _get(document: Mapping[str, Any], path: SecretPath) -> Any:
    node: Any = document
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(document: Json, path: SecretPath, value: Any) -> None:
    node = document
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _delete(document: Json, path: SecretPath) -> None:
    node: Any = document
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def transform_secrets(
    values: Mapping[str, Any], paths: Sequence[SecretPath], fn: Callable[[Any], Any]
) -> Json:
    """A copy of ``values`` with ``fn`` applied to every secret that is present."""
    out: Json = copy.deepcopy(dict(values))
    for path in paths:
        current = _get(out, path)
        if current is not _MISSING and current is not None:
            _set(out, path, fn(current))
    return out


def mask_secrets(values: Mapping[str, Any], paths: Sequence[SecretPath]) -> Json:
    """A copy of ``values`` with every present secret replaced by ``MASK``."""
    return transform_secrets(values, paths, lambda _: MASK)


def merge_kept_secrets(
    new_values: Mapping[str, Any], stored_values: Mapping[str, Any], paths: Sequence[SecretPath]
) -> Json:
    """Apply the update rule for secrets: a secret that is absent from ``new_values`` or equal to
    ``MASK`` keeps its stored value (whatever its form, encrypted or not). A mask with nothing
    stored behind it is dropped."""
    out: Json = copy.deepcopy(dict(new_values))
    for path in paths:
        sent = _get(out, path)
        if sent is _MISSING or sent == MASK:
            stored = _get(stored_values, path)
            if stored is _MISSING:
                _delete(out, path)
            else:
                _set(out, path, copy.deepcopy(stored))
    return out
