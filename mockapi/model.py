"""The values the mock API passes around: a recorded request and a scripted response."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["MockResponse", "RecordedRequest", "Responder", "ResponderResult"]


@dataclass(slots=True)
class RecordedRequest:
    """One request the mock API received, kept for assertions."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    path_params: dict[str, str] = field(default_factory=dict)
    client_port: int = 0  # the client's source port: tells which pooled connection was used

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter."""
        for key, value in reversed(self.query):
            if key == name:
                return value
        return default

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(slots=True)
class MockResponse:
    """What a responder answers. ``stream`` (with an optional ``content_length``) replaces
    ``body`` for bodies produced chunk by chunk."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncGenerator[bytes, None] | None = None
    content_length: int | None = None


ResponderResult = MockResponse | Awaitable[MockResponse]
Responder = Callable[[RecordedRequest], ResponderResult]
