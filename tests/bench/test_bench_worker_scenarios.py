"""Smoke tests of the worker and scheduler scenarios: their sizes, the roster and harness wiring, the
stack addresses handed to each run, and the targets and tables the report makes of their results.
No servers, no timing assertions."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.__main__ import DEFAULT_RUNS, parse_args
from bench.contenders.orchid_worker import Site
from bench.harness import RunResult, expected_served
from bench.report import (
    Target,
    evaluate_targets,
    render_markdown,
    summaries_to_dicts,
    summarize,
    targets_to_dicts,
)
from bench.roster import CONTENDERS, NOT_WIRED
from bench.scenarios import SCENARIOS, Scenario

BY_ID = {c.id: c for c in CONTENDERS}
WORKER_IDS = ("orchid_worker_1", "orchid_worker_2", "orchid_scheduler")


def test_worker_and_scheduler_scenarios_are_wired() -> None:
    assert SCENARIOS["quick"]["worker"].calls == 1000
    assert SCENARIOS["full"]["worker"].calls == 3000
    assert SCENARIOS["quick"]["scheduler"].calls == SCENARIOS["full"]["scheduler"].calls == 10_000
    # One detail call per execution; the scheduler only queues.
    assert expected_served(SCENARIOS["quick"]["worker"]) == {"items": 1000}
    assert expected_served(SCENARIOS["quick"]["scheduler"]) == {}
    for cid in WORKER_IDS:
        assert BY_ID[cid].needs_worker_stack and BY_ID[cid].needs_kafka and not BY_ID[cid].needs_stack
    assert BY_ID["orchid_worker_1"].options == {"workers": 1}
    assert BY_ID["orchid_worker_2"].options == {"workers": 2}
    assert not NOT_WIRED


def test_runs_default_by_mode() -> None:
    assert parse_args(["--quick"]).runs == DEFAULT_RUNS["quick"]
    assert parse_args(["--full"]).runs == DEFAULT_RUNS["full"] == 3
    assert parse_args(["--full", "--runs", "1"]).runs == 1


def test_site_round_trips_and_points_processes_at_it(tmp_path: Path) -> None:
    site = Site(tmp_path, "postgresql+asyncpg://postgres@127.0.0.1:5999/orchid", 6399, "127.0.0.1:9099",
                "http://127.0.0.1:8099")  # fmt: skip
    assert Site.from_dict(site.to_dict()) == site
    env = site.env(WORKER_CONCURRENCY="64")
    assert env["DATABASE_URL"] == site.dsn and env["REDIS_PORT"] == "6399"
    assert env["KAFKA_BROKERS"] == "127.0.0.1:9099" and env["WORKER_CONCURRENCY"] == "64"
    assert site.redis_url == "redis://127.0.0.1:6399/0"


def _run(contender: str, scenario: Scenario, wall_s: float, **raw: float) -> RunResult:
    return RunResult(contender, scenario.name, 1, ok=True, wall_s=wall_s, peak_rss_mb=90.0,
                     verified=True, raw=dict(raw))  # fmt: skip


def _doc(scenarios: list[Scenario], runs: list[RunResult]) -> tuple[dict[str, Any], dict[str, Target]]:
    summaries = summarize(runs, [BY_ID[i] for i in WORKER_IDS], scenarios)
    targets = evaluate_targets(summaries, scenarios)
    doc = {
        "mode": "full", "started_at": "2026-01-01T00:00:00Z", "runs_per_contender": 3,
        "machine": {"nproc": 2, "cpu_model": "x", "memory_gib": 1, "python": "3.11"},
        "versions": {"orchid_git": "abc"}, "scenarios": [asdict(s) for s in scenarios],
        "summaries": summaries_to_dicts(summaries), "targets": targets_to_dicts(targets), "not_wired": {},
    }  # fmt: skip
    return doc, {t.name.split(":")[0]: t for t in targets}


def test_worker_and_scheduler_targets() -> None:
    worker, scheduler = SCENARIOS["full"]["worker"], SCENARIOS["full"]["scheduler"]
    runs = [
        _run("orchid_worker_1", worker, 7.5, worker_cpu_ms_per_execution=2.0, machine_busy_pct=90.0),  # 400/s
        _run("orchid_worker_1", worker, 10.0),
        _run("orchid_worker_1", worker, 6.0),
        _run("orchid_worker_2", worker, 6.0),  # 500/s: 1.25x one
        _run("orchid_scheduler", scheduler, 1.5, in_stream=10_000),
    ]
    doc, target = _doc([worker, scheduler], runs)
    assert target["one worker process"].status == "PASS"
    assert target["two worker processes vs one"].status == "MISS"
    assert target["one scheduler"].status == "PASS"
    assert target["one worker process"].figure == "400/s = 1.33x the goal, best run 500/s"
    assert target["two worker processes vs one"].figure.startswith("1.25x (500 vs 400/s")
    markdown = render_markdown(doc)
    assert "| Orchid worker, 1 process | 3 | 6.000 | 7.500 | 400 | 500 | 2.00 |" in markdown
    assert "| Orchid scheduler, 1 process | 1 | 1.500 | 1.500 | 6,667 | 10,000 | 90 | ok |" in markdown
    assert "2 cores, shared by the worker" in markdown


def test_a_smaller_scheduler_run_is_not_judged() -> None:
    small = Scenario("scheduler", pages=0, per_page=0, concurrency=1, measure="enqueue", calls=2000)
    slow_worker = SCENARIOS["quick"]["worker"]
    _, target = _doc([slow_worker, small], [_run("orchid_worker_1", slow_worker, 5.0),
                                            _run("orchid_scheduler", small, 0.5)])  # fmt: skip
    assert target["one worker process"].status == "MISS"  # 200/s
    assert target["two worker processes vs one"].status == "N/A"
    assert target["one scheduler"].status == "N/A"
    assert "at 2,000 pairs (quick mode)" in target["one scheduler"].figure
