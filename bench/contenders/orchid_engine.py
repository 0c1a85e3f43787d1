"""Orchid's engine in-process: the scenario written as a plan in Orchid's plan language, validated
by engine.validate and run by engine.run.run_plan through the real adapters (engine.http_caller's
AiohttpCaller, engine.limiter_memory, and engine.kafka_sink when emission is on).

Options (``--options-json``): ``{"emission": "off"}`` publishes into a sink that drops every
message (the engine's own cost: templates, conditions, control flow, message building);
``{"emission": "kafka", "bootstrap": "127.0.0.1:PORT"}`` publishes every response to a real broker
and waits for its acknowledgements, as a worker does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from bench.contenders.common import Args, measure, parse_args, report
from bench.scenarios import Scenario

NAME = "orchid_engine"


def plan_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario in the plan language ("Plan Definition Structure"): offset pagination driven by
    the previous page's next_offset, and for fan-out one sub-step per listed item."""
    step: dict[str, Any] = {
        "name": "pages",
        "url": "{config.base_url}/pages",
        "method": "GET",
        "params": {
            "offset": "{prev.body.next_offset || '0'}",
            "limit": "{config.per_page}",
            "total": "{config.total}",
        },
        "while": "response.body.has_more == true",
    }
    if scenario.fanout:
        step["sub_steps"] = [
            {
                "name": "details",
                "iterate_over": "response.body.items[*]",
                "concurrency": scenario.concurrency,
                "url": "{config.base_url}/items/{item.id}",
                "method": "GET",
                "params": {"latency_ms": "{config.latency_ms}"},
                "emit_to_kafka": True,
            }
        ]
    return {"key": f"bench-{scenario.name}", "integration": "bench", "step": step}


class StaticAuth:
    async def values(self, *, refresh: bool = False) -> Mapping[str, Any]:
        return {}


class DroppingSink:
    """ResponseSink that accepts and drops every message: emission off."""

    async def emit_response(self, meta: Any, message: Any, *, error: bool) -> None:
        return None

    async def emit_event(self, meta: Any, event: Any) -> None:
        return None

    async def flush(self) -> None:
        return None


async def main(args: Args) -> None:
    from contextlib import AsyncExitStack

    from engine.http_caller import build_http_caller
    from engine.kafka_sink import build_kafka_sink
    from engine.limiter_memory import MemoryRateLimiter
    from engine.ports import ExecutionMeta
    from engine.run import run_plan
    from engine.validate import validate_plan
    from settings.model import EgressSettings, ExecutionLimits, KafkaSettings

    scenario = args.scenario
    emission = args.options.get("emission", "off")
    # MAX_LOOPS defaults to 1,000 iterations; the full sequential scenario pages 2,000 times.
    limits = ExecutionLimits(max_loops=max(scenario.pages + 1, 1000))
    plan = validate_plan(plan_document(scenario), limits=limits)
    config = {
        "base_url": args.base_url,
        "per_page": scenario.per_page,
        "total": scenario.items,
        "latency_ms": scenario.latency_ms,
    }
    meta = ExecutionMeta(
        tenant_id="bench", integration="bench", plan_key=plan.key, config_id="bench",
        execution_id=str(uuid.uuid4()),
    )  # fmt: skip
    async with AsyncExitStack() as stack:
        # The mock listens on loopback, which the egress policy refuses unless allow-listed.
        http = await stack.enter_async_context(
            build_http_caller(limits, EgressSettings(allowlist=("127.0.0.1",)))
        )
        if emission == "kafka":
            kafka = KafkaSettings(brokers=(args.options["bootstrap"],), enable_idempotence=False)
            sink: Any = await stack.enter_async_context(build_kafka_sink(kafka))
        else:
            sink = DroppingSink()
        with measure() as m:
            outcome = await run_plan(
                plan, meta=meta, config=config, auth=StaticAuth(), context={}, http=http,
                limiter=MemoryRateLimiter(), sink=sink, limits=limits,
            )  # fmt: skip
    if outcome.status != "success":
        raise SystemExit(f"orchid engine run {outcome.status}: {outcome.error}")
    stats = outcome.stats
    m.pages = scenario.pages
    m.details = stats.requests - scenario.pages
    m.records = stats.records
    m.extra.update(emission=emission, requests=stats.requests, messages=stats.messages)
    report(NAME, args, m)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse_args(NAME)))
