"""GetPlan latency: one load-generator process per path, at a fixed concurrency, against the shared
Orchid stack (bench.contenders.orchid_e2e.running_stack: a real ``python -m server`` behind Envoy).

Options (``--options-json``): ``{"path": P, "stack": StackFacts}`` with P one of

- ``direct_grpc``: gRPC straight to the server's loopback port, with the ``x-orchid-tenant-id``
  metadata Envoy would have set after verifying a token;
- ``envoy_grpc``: gRPC through Envoy with the Bearer token (jwt_authn, header rewriting, router);
- ``envoy_rest``: ``GET /api/v1/plans/{key}`` through Envoy's JSON transcoder, aiohttp with
  keep-alive and one connection per concurrent caller.

``concurrency`` callers (scenario) send ``warmup`` untimed calls, then ``calls`` timed ones; each
call's latency is taken around the awaited call (reply read and decoded). Then SERIAL_CALLS calls
one at a time give the path's latency without queueing (``serial_p50_ms``). The generator runs on
uvloop with grpc.aio / aiohttp, in its own process, on the same 2 cores as the server and Envoy.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from bench.contenders.common import Args, measure, parse_args, report

__all__ = ["PATHS", "latency_summary", "percentile", "run_load"]

NAME = "api_latency"
PATHS = ("direct_grpc", "envoy_grpc", "envoy_rest")
TENANT_HEADER = "x-orchid-tenant-id"
SERIAL_CALLS = 200  # after the timed phase, one at a time (not timed as the run's wall time)

Call = Callable[[], Awaitable[int]]  # one GetPlan; returns the reply's size in bytes


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies_s: Sequence[float], wall_s: float) -> dict[str, float]:
    """p50 / p90 / p99 / max / mean in milliseconds, and calls per second over ``wall_s``."""
    ordered = sorted(latencies_s)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 3),
        "p90_ms": round(percentile(ordered, 90) * 1000, 3),
        "p99_ms": round(percentile(ordered, 99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3),
        "rps": round(len(ordered) / wall_s, 1) if wall_s > 0 else 0.0,
    }


async def run_load(call: Call, *, calls: int, concurrency: int, latencies: list[float] | None = None) -> int:
    """``calls`` calls, ``concurrency`` in flight; appends each latency (s); returns bytes read."""
    remaining = calls
    total = 0

    async def caller() -> None:
        nonlocal remaining, total
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            total += await call()
            if latencies is not None:
                latencies.append(time.perf_counter() - started)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, calls)):
            tg.create_task(caller())
    return total


async def main(args: Args) -> None:
    import aiohttp
    import grpc
    from orchid.v1 import plans_pb2, plans_pb2_grpc

    path = args.options["path"]
    if path not in PATHS:
        raise SystemExit(f"unknown path {path!r}; known: {PATHS}")
    facts = args.options["stack"]
    scenario = args.scenario
    key = facts["plan_key"]
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        call: Call
        if path == "envoy_rest":
            connector = aiohttp.TCPConnector(limit=scenario.concurrency, keepalive_timeout=60)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    f"http://{facts['envoy']}",
                    connector=connector,
                    headers={"authorization": f"Bearer {facts['token']}"},
                )
            )
            url = f"/api/v1/plans/{key}"

            async def call() -> int:
                async with session.get(url) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {url}: {response.status} {body[:200]!r}")
                    return len(body)

        else:
            target = facts["grpc"] if path == "direct_grpc" else facts["envoy"]
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(target))
            stub = plans_pb2_grpc.PlanServiceStub(channel)
            metadata = (
                ((TENANT_HEADER, facts["tenant"]),)
                if path == "direct_grpc"
                else (("authorization", f"Bearer {facts['token']}"),)
            )
            request = plans_pb2.GetPlanRequest(key=key)

            async def call() -> int:
                reply = await stub.GetPlan(request, metadata=metadata, timeout=30)
                return int(reply.ByteSize())

        await run_load(call, calls=scenario.warmup or scenario.concurrency, concurrency=scenario.concurrency)
        with measure() as m:
            size = await run_load(
                call, calls=scenario.calls, concurrency=scenario.concurrency, latencies=latencies
            )
        # Then one call at a time: the path's own cost, without the queueing of concurrency 50.
        serial: list[float] = []
        await run_load(call, calls=SERIAL_CALLS, concurrency=1, latencies=serial)
    serial.sort()
    m.extra.update(
        path=path, calls=len(latencies), concurrency=scenario.concurrency, warmup=scenario.warmup,
        reply_bytes=size // max(len(latencies), 1), **latency_summary(latencies, m.wall_s),
        serial_calls=len(serial), serial_p50_ms=round(percentile(serial, 50) * 1000, 3),
        serial_p99_ms=round(percentile(serial, 99) * 1000, 3),
    )  # fmt: skip
    report(NAME, args, m)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse_args(NAME)))
