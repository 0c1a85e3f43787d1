"""The hand-written ceiling: what a scenario costs with nothing but an async HTTP client.

Pages are fetched one after the other (each needs the previous page's ``next_offset``); detail
calls are pipelined behind them through a bounded queue drained by ``concurrency`` workers, so
the detail calls of page N overlap the fetch of page N+1. This is the best any framework can do on
this work, and the figure the ratios are taken against.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bench.contenders.common import Measurement
from bench.scenarios import Scenario

__all__ = ["GetJson", "run_scenario"]

GetJson = Callable[[str, dict[str, str]], Awaitable[Any]]


def page_params(scenario: Scenario, offset: int) -> dict[str, str]:
    return {"offset": str(offset), "limit": str(scenario.per_page), "total": str(scenario.items)}


async def run_scenario(get_json: GetJson, base_url: str, scenario: Scenario, m: Measurement) -> None:
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=scenario.concurrency * 4)
    detail_params = {"latency_ms": str(scenario.latency_ms)}

    async def fetch_pages() -> None:
        offset = 0
        while True:
            body = await get_json(f"{base_url}/pages", page_params(scenario, offset))
            m.pages += 1
            m.records += len(body["items"])
            if scenario.fanout:
                for item in body["items"]:
                    await queue.put(item["id"])
            if not body["has_more"]:
                break
            offset = body["next_offset"]

    async def detail_worker() -> None:
        while (item_id := await queue.get()) is not None:
            await get_json(f"{base_url}/items/{item_id}", detail_params)
            m.details += 1
            m.records += 1

    if not scenario.fanout:
        await fetch_pages()
        return
    async with asyncio.TaskGroup() as tg:
        workers = [tg.create_task(detail_worker()) for _ in range(scenario.concurrency)]
        await fetch_pages()
        for _ in workers:
            await queue.put(None)
