"""Run the mock API standalone: ``python -m mockapi --port 8900 --scenario demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import uvloop

from mockapi.scenarios import SCENARIOS
from mockapi.server import MockApi

log = logging.getLogger("mockapi")


async def serve(host: str, port: int, scenario: str) -> None:
    api = MockApi(host=host, port=port, record=False)  # a long-running demo must not grow forever
    SCENARIOS[scenario](api)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with api:
        log.info("mock API (%s) listening on %s", scenario, api.url)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mockapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="demo")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvloop.run(serve(args.host, args.port, args.scenario))  # faster than asyncio for benchmarks


if __name__ == "__main__":
    main()
