"""Ceiling: the httpx API over httpx-aiohttp's transport (an Orchid dependency), on uvloop."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import uvloop
from httpx_aiohttp import HttpxAiohttpClient

from bench.contenders.common import Args, measure, parse_args, report
from bench.contenders.driver import run_scenario

NAME = "bare_httpx_aiohttp"


async def main(args: Args) -> None:
    limits = httpx.Limits(max_connections=args.scenario.concurrency + 1, max_keepalive_connections=64)
    async with HttpxAiohttpClient(limits=limits, timeout=30) as client:

        async def get_json(url: str, params: dict[str, str]) -> Any:
            response = await client.get(url, params=params)
            response.raise_for_status()
            return orjson.loads(response.content)

        with measure() as m:
            await run_scenario(get_json, args.base_url, args.scenario, m)
    report(NAME, args, m)


if __name__ == "__main__":
    uvloop.run(main(parse_args(NAME)))
