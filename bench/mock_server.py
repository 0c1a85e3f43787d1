"""The bench's mock API: a scripted paginated API on loopback, in a process of its own (uvloop).

Endpoints (all GET, all JSON):

- ``/pages?offset=&limit=&total=``: items ``offset .. offset+limit-1`` of ``total``, with
  ``has_more`` and ``next_offset`` (offset pagination).
- ``/cursor-pages?cursor=&limit=&total=``: the same list with an opaque ``next_cursor``.
- ``/items/{id}?latency_ms=``: one item's details, answered after ``latency_ms``.
- ``/stats`` (``?reset=1`` zeroes it): requests served per endpoint, so the harness checks that
  every contender did all of the work and no more.
- ``/health``.

Page bodies are cached by query string, so a page costs one dict lookup after its first serving:
the mock must never be what a contender waits on (its ceiling is measured by bench.ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from devstack.process import ManagedProcess

__all__ = ["MockApi", "build_app", "running_mock"]

_PAGE_CACHE_MAX = 8192
_UPDATED_AT = "2025-01-15T10:30:00Z"


def _item(i: int) -> dict[str, object]:
    return {"id": i, "name": f"item-{i}", "value": (i * 7919) % 1000, "updated_at": _UPDATED_AT}


def _page(offset: int, limit: int, total: int) -> dict[str, object]:
    end = min(offset + limit, total)
    items = [_item(i) for i in range(offset, end)]
    return {"items": items, "offset": offset, "next_offset": end, "total": total, "has_more": end < total}


@dataclass
class _State:
    served: Counter[str] = field(default_factory=Counter)
    pages: OrderedDict[str, bytes] = field(default_factory=OrderedDict)

    def cached(self, key: str, build: Callable[[], object]) -> bytes:
        body = self.pages.get(key)
        if body is None:
            body = orjson.dumps(build())
            self.pages[key] = body
            if len(self.pages) > _PAGE_CACHE_MAX:
                self.pages.popitem(last=False)
        return body


STATE = web.AppKey("state", _State)


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


async def pages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.served["pages"] += 1
    offset, limit, total = (
        _int(request, "offset", 0),
        _int(request, "limit", 50),
        _int(request, "total", 1000),
    )
    return _json(state.cached(request.query_string, lambda: _page(offset, limit, total)))


async def cursor_pages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.served["cursor_pages"] += 1
    cursor = request.query.get("cursor") or "c0"
    if not cursor.startswith("c") or not cursor[1:].isdigit():
        raise web.HTTPBadRequest(text="bad cursor")
    offset, limit, total = int(cursor[1:]), _int(request, "limit", 50), _int(request, "total", 1000)

    def build() -> dict[str, object]:
        page = _page(offset, limit, total)
        page["next_cursor"] = f"c{page['next_offset']}" if page["has_more"] else None
        return page

    return _json(state.cached("cursor?" + request.query_string, build))


async def item(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.served["items"] += 1
    latency_ms = _int(request, "latency_ms", 0)
    if latency_ms > 0:
        await asyncio.sleep(latency_ms / 1000)
    item_id = request.match_info["item_id"]
    body = {
        "id": int(item_id) if item_id.isdigit() else item_id,
        "detail": {"score": len(item_id), "ok": True},
    }
    return _json(orjson.dumps(body))


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = orjson.dumps(dict(state.served))
    if request.query.get("reset"):
        state.served.clear()
    return _json(body)


async def health(request: web.Request) -> web.Response:
    return _json(b'{"ok":true}')


def build_app() -> web.Application:
    app = web.Application()
    app[STATE] = _State()
    app.router.add_get("/pages", pages)
    app.router.add_get("/cursor-pages", cursor_pages)
    app.router.add_get("/items/{item_id}", item)
    app.router.add_get("/stats", stats)
    app.router.add_get("/health", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mock_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    import uvloop

    # backlog: a load tool opening 64+ connections at once must not see refused connects.
    web.run_app(
        build_app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        loop=uvloop.new_event_loop(),
    )


# --- The harness side: start the mock as a child process ---------------------------------------


@dataclass
class MockApi:
    """A running mock process, seen from the harness."""

    base_url: str
    pid: int


@contextmanager
def running_mock(log_dir: Path) -> Iterator[MockApi]:
    """Start ``python -m bench.mock_server`` on a free loopback port; stop it on exit."""
    from devstack.process import ManagedProcess, free_port, wait_until

    port = free_port()
    proc = ManagedProcess(
        "bench-mock",
        [sys.executable, "-m", "bench.mock_server", "--port", str(port)],
        log_path=log_dir / "mock_server.log",
        cwd=Path(__file__).resolve().parent.parent,
    )
    proc.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base_url, proc), timeout_s=20, what="bench mock API", log=proc.log_path)
        assert proc.pid is not None
        yield MockApi(base_url=base_url, pid=proc.pid)
    finally:
        proc.stop()


def _healthy(base_url: str, proc: ManagedProcess) -> bool:
    import urllib.request

    proc.check_alive()
    try:
        with urllib.request.urlopen(base_url + "/health", timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        time.sleep(0.05)
        return False


if __name__ == "__main__":
    main()
