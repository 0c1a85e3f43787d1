"""Responders: small functions that build a route's answer from the request.

Each builder returns a ``Responder`` (``RecordedRequest -> MockResponse``, sync or async). Values
may be given as is or as a function of the request, e.g. ``json(lambda r: {"id": r.path_params["id"]})``.
"""

from __future__ import annotations

import asyncio
import csv as _csv
import inspect
import io
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from mockapi.model import MockResponse, RecordedRequest, Responder

__all__ = [
    "Stream",
    "csv",
    "json",
    "large_json",
    "pages",
    "raw",
    "redirect",
    "resolve",
    "sequence",
    "status",
    "stream",
    "text",
    "with_headers",
    "xml",
]

Value = Any | Callable[[RecordedRequest], Any]


def _value(value: Value, request: RecordedRequest) -> Any:
    return value(request) if callable(value) else value


async def resolve(responder: Responder, request: RecordedRequest) -> MockResponse:
    """Call a responder, awaiting it if it is async."""
    result = responder(request)
    if inspect.isawaitable(result):
        return await result
    return result


def json(value: Value, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Responder:
    def respond(request: RecordedRequest) -> MockResponse:
        body = orjson.dumps(_value(value, request))
        return MockResponse(status, body, {"Content-Type": "application/json", **(headers or {})})

    return respond


def raw(
    body: bytes | Callable[[RecordedRequest], bytes],
    *,
    content_type: str | None = "application/octet-stream",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Responder:
    def respond(request: RecordedRequest) -> MockResponse:
        all_headers = {"Content-Type": content_type} if content_type else {}
        return MockResponse(status, _value(body, request), {**all_headers, **(headers or {})})

    return respond


def text(
    value: Value,
    *,
    content_type: str = "text/plain; charset=utf-8",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Responder:
    return raw(
        lambda r: str(_value(value, r)).encode(), content_type=content_type, status=status, headers=headers
    )


def xml(value: Value, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Responder:
    return text(value, content_type="application/xml; charset=utf-8", status=status, headers=headers)


def csv(
    rows: Sequence[Mapping[str, Any]] | Callable[[RecordedRequest], Sequence[Mapping[str, Any]]],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Responder:
    """A CSV body with a header row taken from the first row's keys."""

    def render(request: RecordedRequest) -> str:
        items = _value(rows, request)
        out = io.StringIO()
        if items:
            writer = _csv.DictWriter(out, fieldnames=list(items[0]), lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(items)
        return out.getvalue()

    return text(render, content_type="text/csv; charset=utf-8", status=status, headers=headers)


def status(code: int, body: Any = None, *, headers: Mapping[str, str] | None = None) -> Responder:
    """A bare status; the body defaults to {"error": <reason>} for errors and nothing otherwise."""
    if body is None and code >= 400:
        body = {"error": f"status {code}"}
    if body is None:
        return raw(b"", content_type=None, status=code, headers=headers)
    return json(body, status=code, headers=headers)


def redirect(location: str | Callable[[RecordedRequest], str], *, status: int = 302) -> Responder:
    def respond(request: RecordedRequest) -> MockResponse:
        return MockResponse(status, b"", {"Location": _value(location, request)})

    return respond


def with_headers(responder: Responder, headers: Mapping[str, str]) -> Responder:
    async def respond(request: RecordedRequest) -> MockResponse:
        response = await resolve(responder, request)
        response.headers.update(headers)
        return response

    return respond


def sequence(*steps: Responder | int) -> Responder:
    """Answer with each step in turn, then keep repeating the last one: ``sequence(500, 500, ok)``.
    An int step is a bare status."""
    if not steps:
        raise ValueError("sequence() needs at least one step")
    responders = [status(step) if isinstance(step, int) else step for step in steps]
    calls = 0

    async def respond(request: RecordedRequest) -> MockResponse:
        nonlocal calls
        responder = responders[min(calls, len(responders) - 1)]
        calls += 1
        return await resolve(responder, request)

    return respond


def _default_item(index: int) -> dict[str, Any]:
    return {"id": index + 1, "name": f"item-{index + 1}"}


def pages(
    pages: int,
    per_page: int,
    *,
    style: Literal["offset", "cursor", "page"] = "offset",
    item: Callable[[int], Any] = _default_item,
    items_key: str = "items",
    headers: Mapping[str, str] | None = None,
) -> Responder:
    """``pages`` times ``per_page`` items behind offset (``offset``/``limit``), cursor (``cursor``) or
    page-number (``page``, 1-based) pagination. Every page says ``has_more`` and how to get the
    next one (``next_offset`` / ``next_cursor`` / ``next_page``, null on the last page)."""
    total = pages * per_page

    def window(start: int, size: int) -> tuple[list[Any], int]:
        end = min(max(start, 0) + max(size, 0), total)
        return [item(index) for index in range(max(start, 0), end)], end

    def respond(request: RecordedRequest) -> dict[str, Any]:
        if style == "cursor":
            cursor = request.param("cursor") or ""
            start = int(cursor[1:]) if cursor.startswith("c") and cursor[1:].isdigit() else 0
            items, end = window(start, per_page)
            more = end < total
            return {items_key: items, "has_more": more, "next_cursor": f"c{end}" if more else None}
        if style == "page":
            page = int(request.param("page") or "1")
            items, end = window((page - 1) * per_page, per_page)
            more = end < total
            return {
                items_key: items,
                "page": page,
                "total_pages": pages,
                "has_more": more,
                "next_page": page + 1 if more else None,
            }
        offset = int(request.param("offset") or "0")
        limit = int(request.param("limit") or str(per_page))
        items, end = window(offset, limit)
        more = end < total
        return {
            items_key: items,
            "offset": offset,
            "limit": limit,
            "total": total,
            "has_more": more,
            "next_offset": end if more else None,
        }

    return json(respond, headers=headers)


def large_json(size_bytes: int, *, status: int = 200) -> Responder:
    """A JSON object of about ``size_bytes`` ({"items": [{"id", "payload"}...]}), built once."""
    item_payload = "x" * 1000
    count = max(1, size_bytes // (len(item_payload) + 30))
    body = orjson.dumps({"items": [{"id": index, "payload": item_payload} for index in range(count)]})
    return raw(body, content_type="application/json", status=status)


@dataclass
class Stream:
    """A body written chunk by chunk; counts what it managed to write (for streaming-limit tests)."""

    total_bytes: int
    chunk_bytes: int = 64 * 1024
    content_type: str = "application/octet-stream"
    announce_length: bool = True
    chunk_delay_s: float = 0.0
    bytes_sent: int = 0
    completed: int = 0
    aborted: int = 0

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        chunk = b"a" * self.chunk_bytes
        left = self.total_bytes
        try:
            while left > 0:
                piece = chunk if left >= len(chunk) else chunk[:left]
                yield piece  # returns once the server has written it
                self.bytes_sent += len(piece)
                left -= len(piece)
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
        finally:
            if left > 0:
                self.aborted += 1
            else:
                self.completed += 1

    def __call__(self, request: RecordedRequest) -> MockResponse:
        length = self.total_bytes if self.announce_length else None
        return MockResponse(200, b"", {"Content-Type": self.content_type}, self._chunks(), length)


def stream(total_bytes: int, **options: Any) -> Stream:
    return Stream(total_bytes, **options)
