"""The work every contender does, as plain values (no I/O).

One scenario is the same list of requests for everybody: the same pages of the same mock API,
the same detail calls, the same concurrency. Contenders receive a scenario as JSON on their
command line (``--scenario-json``), so the definitions live in exactly one place.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

__all__ = [
    "LIMITER_CONCURRENCY",
    "LIMITER_PROCESSES",
    "LIMITER_RATE",
    "SCENARIOS",
    "WORKER_CONCURRENCY",
    "Scenario",
    "limiter_accuracy",
    "scenario_from_json",
    "scenarios_for",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    """``pages`` list pages of ``per_page`` items (offset pagination), fetched one after the other;
    if ``fanout`` is set, one detail call GET /items/{id} per item, ``concurrency`` at a time,
    each answered after ``latency_ms``."""

    name: str
    pages: int
    per_page: int
    fanout: bool = False
    concurrency: int = 50
    latency_ms: int = 0
    # What the scenario is for: "throughput" (wall time), "memory" (peak RSS), "latency" (per-call
    # p50 / p99 of an Orchid RPC), "accuracy" (a shared rate limit's achieved rate), "executions"
    # (worker executions/s) or "enqueue" (the scheduler's time to put due pairs on the stream).
    measure: str = "throughput"
    # "latency": calls timed per run, after ``warmup`` untimed ones (``concurrency`` in flight);
    # "executions": executions per run (``concurrency`` = WORKER_CONCURRENCY of each worker);
    # "enqueue": (plan, config) pairs that fall due at one instant.
    calls: int = 0
    warmup: int = 0

    @property
    def items(self) -> int:
        return self.pages * self.per_page

    @property
    def requests(self) -> int:
        """Requests a correct run sends: every page (the last one says has_more=false) + details."""
        return self.pages + (self.items if self.fanout else 0)

    @property
    def ideal_s(self) -> float | None:
        """Wall time of the detail calls alone at full concurrency: the fan-out's lower bound."""
        if not self.fanout or self.latency_ms == 0:
            return None
        return math.ceil(self.items / self.concurrency) * self.latency_ms / 1000

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def scenario_from_json(text: str) -> Scenario:
    return Scenario(**json.loads(text))


# The shared-limit accuracy run: requests/s the limit allows (LIMITER_RATE per 1 s window), and
# the engine processes sharing it, each fanning out LIMITER_CONCURRENCY at a time.
LIMITER_RATE = 100
LIMITER_PROCESSES = 3
LIMITER_CONCURRENCY = 20

_SEQ_FULL = Scenario("seq", pages=2000, per_page=50)
_FANOUT = Scenario("fanout", pages=50, per_page=20, fanout=True, concurrency=50, latency_ms=20)
# Peak RSS of a long fan-out: 100 list pages of 1,000 items, one detail call per item.
_BIG_FULL = Scenario("fanout_big", pages=100, per_page=1000, fanout=True, concurrency=50, measure="memory")

# GetPlan through a real Orchid stack (bench.contenders.api_latency): no mock pages at all.
_LATENCY_QUICK = Scenario("api_latency", pages=0, per_page=0, concurrency=50, measure="latency",
                          calls=600, warmup=100)  # fmt: skip
_LATENCY_FULL = Scenario("api_latency", pages=0, per_page=0, concurrency=50, measure="latency",
                         calls=20_000, warmup=2000)  # fmt: skip


# Worker executions/s: a one-request plan (emission on) run ``calls`` times by 1 or 2 worker
# processes; and the scheduler's time from the due instant until ``calls`` due pairs are queued.
WORKER_CONCURRENCY = 64
_WORKER_QUICK = Scenario("worker", pages=0, per_page=0, concurrency=WORKER_CONCURRENCY, measure="executions",
                         calls=1000)  # fmt: skip
_WORKER_FULL = replace(_WORKER_QUICK, calls=3000)
_SCHEDULER = Scenario("scheduler", pages=0, per_page=0, concurrency=1, measure="enqueue", calls=10_000)


def limiter_accuracy(
    seconds: int, *, rate: int = LIMITER_RATE, processes: int = LIMITER_PROCESSES
) -> Scenario:
    """``processes`` engine processes, each one list page then a fan-out of detail calls, all behind
    one shared ``rate``/s limit: sized so that the detail calls take ``seconds`` at that rate."""
    per_process = rate * seconds // processes
    return Scenario("limiter_accuracy", pages=processes, per_page=per_process, fanout=True,
                    concurrency=LIMITER_CONCURRENCY, measure="accuracy")  # fmt: skip


# Quick mode keeps the fan-out as is and shortens the rest: 400 sequential pages, and a 10,000-item
# memory run (the 100,000-item figure, and its target, come from full mode: ~35 s a run for Orchid).
SCENARIOS: dict[str, dict[str, Scenario]] = {
    "quick": {
        "seq": Scenario("seq", pages=400, per_page=50),
        "fanout": _FANOUT,
        "fanout_big": Scenario(
            "fanout_big", pages=10, per_page=1000, fanout=True, concurrency=50, measure="memory"
        ),
        "api_latency": _LATENCY_QUICK,
        # 10 s in quick mode (to stay under 3 minutes); the minute is full mode.
        "limiter_accuracy": limiter_accuracy(10),
        "worker": _WORKER_QUICK,
        "scheduler": _SCHEDULER,
    },
    "full": {
        "seq": _SEQ_FULL,
        "fanout": _FANOUT,
        "fanout_big": _BIG_FULL,
        "api_latency": _LATENCY_FULL,
        "limiter_accuracy": limiter_accuracy(60),
        "worker": _WORKER_FULL,
        "scheduler": _SCHEDULER,
    },
}


def scenarios_for(mode: str, only: list[str] | None = None) -> list[Scenario]:
    chosen = SCENARIOS[mode]
    if only:
        unknown = [name for name in only if name not in chosen]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(chosen)}")
        return [chosen[name] for name in only]
    return list(chosen.values())
