"""MockApi: a real HTTP server on 127.0.0.1 that tests script per route and that records every
request it receives.

    async with MockApi() as api:
        api.route("GET", "/contacts", pages(5, 20))
        api.route("GET", "/items/{id}", json(lambda r: {"id": r.path_params["id"]}), latency=0.02)
        ... call f"{api.url}/contacts" ...
        assert len(api.requests("GET", "/contacts")) == 5

It is built on aiohttp's low-level ``web.Server`` (no router, no middlewares): a dict lookup for
exact paths, a short list of compiled templates otherwise, so the per-request overhead stays small
enough for benchmarks.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from mockapi.model import MockResponse, RecordedRequest, Responder
from mockapi.oauth import OAuth2Server
from mockapi.responders import resolve

__all__ = ["MockApi", "Route"]

_TEMPLATE_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _compile(template: str) -> re.Pattern[str] | None:
    """A regex for "/items/{id}", or None for an exact path."""
    if "{" not in template:
        return None
    pattern = ""
    position = 0
    for match in _TEMPLATE_PARAM.finditer(template):
        pattern += re.escape(template[position : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
        position = match.end()
    return re.compile(pattern + re.escape(template[position:]) + "$")


@dataclass
class Route:
    method: str  # "*" matches any method
    path: str
    responder: Responder
    latency: float = 0.0
    pattern: re.Pattern[str] | None = None
    calls: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)


class MockApi:
    """A scripted HTTP API on 127.0.0.1 (port 0 by default). Use as an async context manager, or
    ``await start()`` / ``await stop()``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, record: bool = True) -> None:
        self._host = host
        self._port = port
        self._record = record
        self._exact: dict[tuple[str, str], Route] = {}
        self._templates: list[Route] = []
        self._received: list[RecordedRequest] = []
        self._runner: web.ServerRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # --- scripting -------------------------------------------------------------------------------

    def route(self, method: str, path: str, responder: Responder, *, latency: float = 0.0) -> Route:
        """Answer ``method path`` with ``responder``; a later route for the same key replaces it."""
        route = Route(method.upper(), path, responder, latency, _compile(path))
        if route.pattern is None:
            self._exact[(route.method, path)] = route
        else:
            self._templates = [r for r in self._templates if (r.method, r.path) != (route.method, path)]
            self._templates.append(route)
        return route

    def oauth2(self, path: str = "/oauth/token", **options: Any) -> OAuth2Server:
        """Mount an OAuth 2.0 token endpoint at ``POST path``; see OAuth2Server for options."""
        server = OAuth2Server(**options)
        self.route("POST", path, server.token_endpoint)
        return server

    def requests(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only one method and/or path (exact, without query)."""
        return [
            request
            for request in self._received
            if (method is None or request.method == method.upper()) and (path is None or request.path == path)
        ]

    def reset(self) -> None:
        """Forget recorded requests and call counts (routes stay)."""
        self._received.clear()
        for route in (*self._exact.values(), *self._templates):
            route.calls = 0
            route.requests.clear()

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> MockApi:
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockApi:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- serving ---------------------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        route = self._exact.get((method, path)) or self._exact.get(("*", path))
        if route is not None:
            return route, {}
        for candidate in self._templates:
            if candidate.method in (method, "*"):
                found = candidate.pattern.match(path) if candidate.pattern else None
                if found:
                    return candidate, found.groupdict()
        return None, {}

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=list(request.query.items()),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            at=time.monotonic(),
            wall=time.time(),
            client_port=_client_port(request),
        )
        route, recorded.path_params = self._match(request.method, request.path)
        if self._record:
            self._received.append(recorded)
        if route is None:
            return web.json_response({"error": f"no route for {request.method} {request.path}"}, status=404)
        route.calls += 1
        if self._record:
            route.requests.append(recorded)
        if route.latency:
            await asyncio.sleep(route.latency)
        return await _send(request, await resolve(route.responder, recorded))


def _client_port(request: web.BaseRequest) -> int:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    return int(peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else 0


async def _send(request: web.BaseRequest, scripted: MockResponse) -> web.StreamResponse:
    if scripted.stream is None:
        return web.Response(status=scripted.status, body=scripted.body, headers=scripted.headers)
    response = web.StreamResponse(status=scripted.status, headers=scripted.headers)
    if scripted.content_length is not None:
        response.content_length = scripted.content_length
    await response.prepare(request)
    chunks = scripted.stream
    try:
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception:
                # The script broke the body on purpose (or by accident): hang up mid-body, as a
                # crashing upstream would, so the client sees a truncated response.
                if request.transport is not None:
                    request.transport.close()
                return response
            try:
                await response.write(chunk)
            except ConnectionError:
                return response  # the client hung up (e.g. it stopped reading at its size limit)
        await response.write_eof()
    finally:
        await chunks.aclose()  # lets the stream count a body that was not written to the end
    return response
