"""Who runs: every contender, the interpreter it runs under, and the scenarios it takes part in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["BASELINE", "CONTENDERS", "NOT_WIRED", "Contender", "select"]

Kind = Literal["ceiling", "orchid", "peer"]


@dataclass(frozen=True, slots=True)
class Contender:
    id: str
    label: str
    module: str  # run as ``python -m <module>``
    kind: Kind
    venv: str | None = None  # a bench.peers.venvs.PEERS name; None: Orchid's own interpreter
    options: dict[str, Any] = field(default_factory=dict)
    needs_kafka: bool = False
    # Scenarios it runs; None: all. The 100k fan-out measures Orchid's memory, so the slow
    # contenders sit it out (dlt / Airbyte / httpx would take minutes per run there).
    scenarios: frozenset[str] | None = None


_FAST_SCENARIOS = frozenset({"seq", "fanout"})

CONTENDERS: tuple[Contender, ...] = (
    Contender("bare_aiohttp", "bare aiohttp + uvloop", "bench.contenders.bare_aiohttp", "ceiling"),
    Contender("bare_httpx", "bare httpx.AsyncClient", "bench.contenders.bare_httpx", "ceiling",
              scenarios=_FAST_SCENARIOS),
    Contender("bare_httpx_aiohttp", "bare httpx + httpx-aiohttp transport",
              "bench.contenders.bare_httpx_aiohttp", "ceiling", scenarios=_FAST_SCENARIOS),
    Contender("orchid_engine_off", "Orchid engine, emission off", "bench.contenders.orchid_engine", "orchid",
              options={"emission": "off"}),
    Contender("orchid_engine_kafka", "Orchid engine, emission to Kafka", "bench.contenders.orchid_engine",
              "orchid", options={"emission": "kafka"}, needs_kafka=True),
    Contender("dlt_rest_api", "dlt rest_api (extract only)", "bench.contenders.dlt_rest_api", "peer",
              venv="dlt", scenarios=_FAST_SCENARIOS),
    Contender("airbyte_lowcode", "Airbyte low-code CDK", "bench.contenders.airbyte_lowcode", "peer",
              venv="airbyte", scenarios=_FAST_SCENARIOS),
)  # fmt: skip

BASELINE = "bare_aiohttp"

# Named by the issue, not measurable yet; the report lists them so the gap is visible.
NOT_WIRED: dict[str, str] = {
    "orchid_e2e": "Orchid end to end (scheduler -> Redis stream -> worker -> Kafka): later",
    "worker_executions_per_s": "worker executions/s: later",
    "scheduler_enqueue": "scheduler enqueue rate: later",
    "limiter_overhead": "rate-limiter overhead and accuracy: later",
    "getplan_envoy": "GetPlan latency through Envoy: later",
}


def select(ids: list[str] | None, *, skip_peers: bool) -> list[Contender]:
    chosen = [c for c in CONTENDERS if not (skip_peers and c.kind == "peer")]
    if ids:
        known = {c.id for c in CONTENDERS}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"unknown contender(s) {unknown}; known: {sorted(known)}")
        chosen = [c for c in chosen if c.id in ids]
    return chosen
