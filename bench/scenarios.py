"""The work every contender does, as plain values (no I/O).

One scenario is the same list of requests for everybody: the same pages of the same mock API,
the same detail calls, the same concurrency. Contenders receive a scenario as JSON on their
command line (``--scenario-json``), so the definitions live in exactly one place.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

__all__ = ["SCENARIOS", "Scenario", "scenario_from_json", "scenarios_for"]


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
    # What the scenario is for: "throughput" (wall time) or "memory" (peak RSS).
    measure: str = "throughput"

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


_SEQ_FULL = Scenario("seq", pages=2000, per_page=50)
_FANOUT = Scenario("fanout", pages=50, per_page=20, fanout=True, concurrency=50, latency_ms=20)
# Peak RSS of a long fan-out: 100 list pages of 1,000 items, one detail call per item.
_BIG_FULL = Scenario("fanout_big", pages=100, per_page=1000, fanout=True, concurrency=50, measure="memory")

# Quick mode keeps the fan-out as is and shortens the rest: 400 sequential pages, and a 10,000-item
# memory run (the 100,000-item figure, and its target, come from full mode: ~35 s a run for Orchid).
SCENARIOS: dict[str, dict[str, Scenario]] = {
    "quick": {
        "seq": Scenario("seq", pages=400, per_page=50),
        "fanout": _FANOUT,
        "fanout_big": Scenario(
            "fanout_big", pages=10, per_page=1000, fanout=True, concurrency=50, measure="memory"
        ),
    },
    "full": {"seq": _SEQ_FULL, "fanout": _FANOUT, "fanout_big": _BIG_FULL},
}


def scenarios_for(mode: str, only: list[str] | None = None) -> list[Scenario]:
    chosen = SCENARIOS[mode]
    if only:
        unknown = [name for name in only if name not in chosen]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(chosen)}")
        return [chosen[name] for name in only]
    return list(chosen.values())
