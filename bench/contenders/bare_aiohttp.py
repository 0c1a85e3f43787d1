"""Ceiling: a bare aiohttp.ClientSession loop on uvloop, bodies decoded with orjson."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import uvloop

from bench.contenders.common import Args, measure, parse_args, report
from bench.contenders.driver import run_scenario

NAME = "bare_aiohttp"


async def main(args: Args) -> None:
    connector = aiohttp.TCPConnector(limit=args.scenario.concurrency + 1)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get_json(url: str, params: dict[str, str]) -> Any:
            async with session.get(url, params=params) as response:
                response.raise_for_status()
                return orjson.loads(await response.read())

        with measure() as m:
            await run_scenario(get_json, args.base_url, args.scenario, m)
    report(NAME, args, m)


if __name__ == "__main__":
    uvloop.run(main(parse_args(NAME)))
