"""What every contender shares: its command line, its clock, its one result line. Stdlib only."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.scenarios import Scenario, scenario_from_json

__all__ = ["RESULT_PREFIX", "Args", "Measurement", "current_rss_mb", "measure", "parse_args", "report"]

RESULT_PREFIX = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class Args:
    base_url: str
    scenario: Scenario
    options: dict[str, Any]


def parse_args(contender: str, argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(prog=f"python -m bench.contenders.{contender}")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--scenario-json", required=True, help="a bench.scenarios.Scenario as JSON")
    parser.add_argument("--options-json", default="{}", help="contender-specific options as JSON")
    ns = parser.parse_args(argv)
    return Args(
        base_url=ns.base_url.rstrip("/"),
        scenario=scenario_from_json(ns.scenario_json),
        options=json.loads(ns.options_json),
    )


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM belongs to the process's own memory map, so it
    starts afresh at exec; ru_maxrss does not on Linux (it keeps the forking parent's high-water
    mark, so every contender would show at least the harness's own peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class Measurement:
    """Filled by the contender inside ``measure()``: what it fetched and counted."""

    pages: int = 0
    records: int = 0  # list items + detail records the contender saw
    details: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    rss_before_mb: float = 0.0


@contextmanager
def measure() -> Iterator[Measurement]:
    """Time the work only: imports and client construction before it are not counted."""
    m = Measurement(rss_before_mb=current_rss_mb())
    started = time.perf_counter()
    yield m
    m.wall_s = time.perf_counter() - started


def report(contender: str, args: Args, m: Measurement) -> None:
    result = {
        "contender": contender,
        "scenario": args.scenario.name,
        "wall_s": round(m.wall_s, 6),
        "pages": m.pages,
        "details": m.details,
        "records": m.records,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_mb": round(m.rss_before_mb, 1),
        "python": sys.version.split()[0],
        **m.extra,
    }
    print(RESULT_PREFIX + json.dumps(result, separators=(",", ":")), flush=True)
