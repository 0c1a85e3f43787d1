"""Render a step's request from its compiled templates: method, URL, headers, params, body.

Rules beyond engine.templates:
- Header and param values that render to null are left out (an optional cursor on the first
  page); a param whose whole value is an array repeats the parameter once per element.
- JSON bodies are encoded with orjson; form bodies are urlencoded (arrays repeat the key); raw
  bodies are sent as the rendered UTF-8 text. A Content-Type is added when the step sets none.
- A body larger than MAX_REQUEST_BODY_SIZE is refused before anything is sent.
- The URL must render to an absolute http(s) URL with a host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import orjson

from engine.errors import InvalidUrlError, RequestBodyTooLargeError, TemplateError
from engine.plan import Step
from engine.ports import HttpRequest, JsonValue
from engine.templates import JsonTemplate, Template, stringify

__all__ = ["build_request", "endpoint_of", "full_url", "request_identity"]

_CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}

_NETLOC_SLOW = re.compile(r"[@\[\]\\]")
_URL_CONTROL = re.compile(r"[\t\r\n]")

RequestIdentity = tuple[str, str, tuple[tuple[str, str], ...], bytes | None]


def _pairs(name: str, value: JsonValue) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, list):
        return [(name, stringify(element)) for element in value if element is not None]
    return [(name, stringify(value))]


def _render_body(step: Step, variables: Mapping[str, JsonValue]) -> bytes | None:
    body = step.body
    if body is None:
        return None
    if isinstance(body, Template):
        return body.render(variables).encode()
    assert isinstance(body, JsonTemplate)
    value = body.render(variables)
    if step.body_format == "form":
        if not isinstance(value, dict):
            raise TemplateError(
                f"form body of step {step.path} rendered to {type(value).__name__}, not an object"
            )
        pairs = [pair for name, element in value.items() for pair in _pairs(name, element)]
        return urlencode(pairs).encode()
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise TemplateError(f"body of step {step.path} is not JSON-serializable: {exc}") from exc


def build_request(step: Step, variables: Mapping[str, JsonValue], *, max_body_bytes: int) -> HttpRequest:
    """Render the request. Raises TemplateError, InvalidUrlError or RequestBodyTooLargeError."""
    url = step.url.render_url(variables)
    if not _plain_http_url(url) and not _http_url(url):
        raise InvalidUrlError(
            f"step {step.path}: url {step.url.source!r} rendered to {url!r}, not an absolute http(s) URL"
        )
    headers: dict[str, str] = {}
    for name, template in step.headers:
        value = template.value(variables)
        if value is not None:
            headers[name] = stringify(value)
    params: list[tuple[str, str]] = []
    for name, template in step.params:
        params.extend(_pairs(name, template.value(variables)))
    body = _render_body(step, variables)
    if body is not None:
        if len(body) > max_body_bytes:
            raise RequestBodyTooLargeError(
                f"step {step.path}: request body is {len(body)} bytes; the limit is {max_body_bytes}"
            )
        content_type = _CONTENT_TYPES.get(step.body_format)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
    return HttpRequest(step.method, url, headers, tuple(params), body, step.timeout_s)


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _plain_http_url(url: str) -> bool:
    """The common case of ``_http_url`` without parsing (urlsplit's cache misses on every fan-out
    item's URL): lower-case http(s)://, then a plain ASCII host[:port] before the first / ? or #.
    False means "ask urlsplit", not "invalid"."""
    if url.startswith("https://"):
        start = 8
    elif url.startswith("http://"):
        start = 7
    else:
        return False
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start)
        if found != -1 and found < end:
            end = found
    netloc = url[start:end]
    return (
        bool(netloc)
        and netloc[0] != ":"
        and netloc.isascii()
        and _NETLOC_SLOW.search(netloc) is None
        and _URL_CONTROL.search(url) is None
    )


def request_identity(request: HttpRequest) -> RequestIdentity:
    """What makes two requests the same page request (headers are left out: a refreshed token
    must not make a stuck cursor look like progress)."""
    return (request.method, request.url, tuple(request.params), request.body)


def full_url(request: HttpRequest) -> str:
    """The URL with the params appended as a query string."""
    if not request.params:
        return request.url
    separator = "&" if "?" in request.url else "?"
    return request.url + separator + urlencode(list(request.params))


_ENDPOINTS: dict[tuple[str, str], str] = {}
_ENDPOINTS_MAX = 4096


def endpoint_of(step: Step, variables: Mapping[str, JsonValue]) -> str:
    """ "METHOD host/path-template": names the endpoint for rate limits, the same for every item."""
    shape = step.url.render_shape(variables)
    key = (step.method, shape)
    endpoint = _ENDPOINTS.get(key)
    if endpoint is None:
        parts = urlsplit(shape)
        endpoint = f"{step.method} {parts.netloc}{parts.path}"
        if len(_ENDPOINTS) >= _ENDPOINTS_MAX:
            _ENDPOINTS.clear()
        _ENDPOINTS[key] = endpoint
    return endpoint
