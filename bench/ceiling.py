"""The mock API's own ceiling: requests/s it serves to a load tool at concurrency 64.

wrk (Debian package ``wrk``) when it is installed, otherwise a bare aiohttp client on uvloop
(``python -m bench.ceiling``). Both run on the same 2 cores as the mock, so the figure is a lower
bound of what the mock could serve; the report sets it beside the fastest rate any contender
reached, to show the mock was not what they waited on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

__all__ = ["Ceiling", "measure_ceiling"]

CONCURRENCY = 64
# The two request shapes contenders send most: a 50-item list page and a detail record.
PATHS = {"page_50_items": "/pages?offset=0&limit=50&total=100000", "item": "/items/1?latency_ms=0"}


@dataclass(frozen=True, slots=True)
class Ceiling:
    tool: str
    concurrency: int
    duration_s: float
    requests_per_s: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_ceiling(base_url: str, duration_s: float = 2.0) -> Ceiling:
    wrk = shutil.which("wrk")
    rates = {}
    for name, path in PATHS.items():
        url = base_url + path
        rates[name] = _wrk(wrk, url, duration_s) if wrk else _aiohttp(url, duration_s)
    return Ceiling(tool="wrk" if wrk else "aiohttp", concurrency=CONCURRENCY, duration_s=duration_s,
                   requests_per_s=rates)  # fmt: skip


def _wrk(wrk: str, url: str, duration_s: float) -> float:
    argv = [wrk, "-t1", f"-c{CONCURRENCY}", f"-d{max(1, round(duration_s))}s", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    return round(float(match.group(1)), 1)


def _aiohttp(url: str, duration_s: float) -> float:
    argv = [sys.executable, "-m", "bench.ceiling", "--url", url, "--duration", str(duration_s)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["requests_per_s"])


async def _load(url: str, duration_s: float) -> float:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + duration_s
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.get(url) as response:
                    await response.read()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    import uvloop

    rate = uvloop.run(_load(args.url, args.duration))
    print(json.dumps({"requests_per_s": round(rate, 1)}))


if __name__ == "__main__":
    main()
