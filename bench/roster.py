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
    # Runs against a whole Orchid stack (devstack.stack.Stack, started once per bench run): the
    # harness passes its addresses as options["stack"] (bench.contenders.orchid_e2e.StackFacts).
    needs_stack: bool = False
    # Caps --runs for a contender whose one run is long (the minute-long limiter accuracy run);
    # quick_max_runs caps it in quick mode only.
    max_runs: int | None = None
    quick_max_runs: int | None = None
    # Runs on the worker stack (bench.contenders.orchid_worker.running_worker_stack: its own
    # Postgres and Redis beside the harness's broker and mock, started once per bench run), whose
    # addresses the harness passes as options["worker_stack"].
    needs_worker_stack: bool = False


_FAST_SCENARIOS = frozenset({"seq", "fanout"})
# The mock-API scenarios; api_latency and limiter_accuracy have contenders of their own.
_MOCK_SCENARIOS = frozenset({"seq", "fanout", "fanout_big"})
_LATENCY = "bench.contenders.api_latency"
_WORKER = "bench.contenders.orchid_worker"

CONTENDERS: tuple[Contender, ...] = (
    Contender("bare_aiohttp", "bare aiohttp + uvloop", "bench.contenders.bare_aiohttp", "ceiling",
              scenarios=_MOCK_SCENARIOS),
    Contender("bare_httpx", "bare httpx.AsyncClient", "bench.contenders.bare_httpx", "ceiling",
              scenarios=_FAST_SCENARIOS, quick_max_runs=1),  # 5 s a fan-out run; no target reads it
    Contender("bare_httpx_aiohttp", "bare httpx + httpx-aiohttp transport",
              "bench.contenders.bare_httpx_aiohttp", "ceiling", scenarios=_FAST_SCENARIOS),
    Contender("orchid_engine_off", "Orchid engine, emission off", "bench.contenders.orchid_engine", "orchid",
              options={"emission": "off"}, scenarios=_MOCK_SCENARIOS),
    Contender("orchid_engine_kafka", "Orchid engine, emission to Kafka", "bench.contenders.orchid_engine",
              "orchid", options={"emission": "kafka"}, needs_kafka=True, scenarios=_MOCK_SCENARIOS),
    Contender("dlt_rest_api", "dlt rest_api (extract only)", "bench.contenders.dlt_rest_api", "peer",
              venv="dlt", scenarios=_FAST_SCENARIOS),
    Contender("airbyte_lowcode", "Airbyte low-code CDK", "bench.contenders.airbyte_lowcode", "peer",
              venv="airbyte", scenarios=_FAST_SCENARIOS),
    # GetPlan latency (bench.contenders.api_latency): one load-generator process per path.
    Contender("api_direct_grpc", "GetPlan, gRPC direct to the server", _LATENCY, "orchid",
              options={"path": "direct_grpc"}, scenarios=frozenset({"api_latency"}), needs_stack=True),
    Contender("api_envoy_grpc", "GetPlan, gRPC through Envoy", _LATENCY, "orchid",
              options={"path": "envoy_grpc"}, scenarios=frozenset({"api_latency"}), needs_stack=True),
    Contender("api_envoy_rest", "GetPlan, REST through Envoy", _LATENCY, "orchid",
              options={"path": "envoy_rest"}, scenarios=frozenset({"api_latency"}), needs_stack=True),
    # TriggerPlan through Envoy -> scheduler's queue -> worker -> mock API -> Kafka, read back.
    Contender("orchid_e2e", "Orchid end to end (Envoy -> worker -> Kafka)", "bench.contenders.orchid_e2e",
              "orchid", scenarios=_FAST_SCENARIOS, needs_stack=True),
    # The shared (Redis) limiter: a generous plan limit on seq, and a real limit shared by 3 processes.
    Contender("orchid_engine_redis_limit", "Orchid engine, emission off, generous Redis limit",
              "bench.contenders.limiter", "orchid", options={"mode": "overhead"},
              scenarios=frozenset({"seq"}), needs_stack=True),
    Contender("limiter_accuracy", "Redis limiter, 3 engine processes, one shared limit",
              "bench.contenders.limiter", "orchid", options={"mode": "accuracy"},
              scenarios=frozenset({"limiter_accuracy"}), needs_stack=True, max_runs=1),
    # Real `python -m worker` processes draining a one-request plan's jobs, and one real
    # `python -m scheduler` queueing 10,000 due pairs (bench.contenders.orchid_worker).
    Contender("orchid_worker_1", "Orchid worker, 1 process", _WORKER, "orchid", options={"workers": 1},
              scenarios=frozenset({"worker"}), needs_kafka=True, needs_worker_stack=True, quick_max_runs=2),
    Contender("orchid_worker_2", "Orchid worker, 2 processes", _WORKER, "orchid", options={"workers": 2},
              scenarios=frozenset({"worker"}), needs_kafka=True, needs_worker_stack=True, quick_max_runs=2),
    Contender("orchid_scheduler", "Orchid scheduler, 1 process", _WORKER, "orchid",
              scenarios=frozenset({"scheduler"}), needs_kafka=True, needs_worker_stack=True,
              quick_max_runs=1),  # 11 s a run, mostly seeding 130,000 executions
)  # fmt: skip

BASELINE = "bare_aiohttp"

# Named by the issue, not measurable yet; the report lists them so the gap is visible (none left).
NOT_WIRED: dict[str, str] = {}


def select(ids: list[str] | None, *, skip_peers: bool) -> list[Contender]:
    chosen = [c for c in CONTENDERS if not (skip_peers and c.kind == "peer")]
    if ids:
        known = {c.id for c in CONTENDERS}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"unknown contender(s) {unknown}; known: {sorted(known)}")
        chosen = [c for c in chosen if c.id in ids]
    return chosen
