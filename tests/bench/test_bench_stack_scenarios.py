"""Smoke tests of the stack scenarios (GetPlan latency, Orchid end to end, the shared limiter):
their figures, the result shapes the report reads, and a tiny real run of the limiter contender
against a real Redis. No timing assertions."""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from bench.contenders.api_latency import latency_summary, percentile, run_load
from bench.contenders.limiter import accuracy_figures
from bench.contenders.orchid_e2e import expected_messages
from bench.harness import RunResult, expected_served, run_once
from bench.mock_server import running_mock
from bench.report import evaluate_targets, render_markdown, summaries_to_dicts, summarize, targets_to_dicts
from bench.roster import CONTENDERS, select
from bench.scenarios import SCENARIOS, Scenario, limiter_accuracy
from devstack.servers import Redis

BY_ID = {c.id: c for c in CONTENDERS}
LATENCY = SCENARIOS["quick"]["api_latency"]
ACCURACY = SCENARIOS["quick"]["limiter_accuracy"]
SEQ = SCENARIOS["quick"]["seq"]
FANOUT = SCENARIOS["quick"]["fanout"]


def test_scenarios_and_roster_wire_the_stack_contenders() -> None:
    assert SCENARIOS["full"]["api_latency"].calls == 20_000
    assert SCENARIOS["full"]["limiter_accuracy"].items == 6000  # 60 s at 100/s
    assert expected_served(LATENCY) == {}  # GetPlan never touches the mock
    assert expected_served(ACCURACY) == {"pages": 3, "items": ACCURACY.items}
    for cid in ("api_direct_grpc", "api_envoy_grpc", "api_envoy_rest", "orchid_e2e", "limiter_accuracy"):
        assert BY_ID[cid].needs_stack
    # The mock-only contenders stay out of the stack scenarios.
    for cid in ("bare_aiohttp", "orchid_engine_off", "orchid_engine_kafka"):
        taken = BY_ID[cid].scenarios
        assert taken is not None and "api_latency" not in taken
    assert BY_ID["limiter_accuracy"].max_runs == 1
    assert {c.id for c in select(None, skip_peers=True)} >= {"orchid_e2e", "orchid_engine_redis_limit"}


def test_percentiles_and_latency_summary() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile(sorted(samples), 50) == pytest.approx(0.050)
    assert percentile(sorted(samples), 99) == pytest.approx(0.099)
    summary = latency_summary(samples, wall_s=2.0)
    assert summary["p50_ms"] == pytest.approx(50.0)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert summary["rps"] == pytest.approx(50.0)


async def test_run_load_makes_exactly_the_calls() -> None:
    made = 0

    async def call() -> int:
        nonlocal made
        made += 1
        return 10

    latencies: list[float] = []
    total = await run_load(call, calls=37, concurrency=5, latencies=latencies)
    assert made == 37 and len(latencies) == 37 and total == 370


def test_accuracy_of_a_limiter_that_holds_the_limit_exactly() -> None:
    # 100 calls at the start of each 1.05 s window (a 50 ms margin), for 10 windows.
    starts = [w * 1.05 + i * 0.001 for w in range(10) for i in range(100)]
    figures = accuracy_figures(starts, rate=100, window_s=1.0)
    assert figures["calls"] == 1000
    assert figures["max_in_any_window"] == 100
    assert figures["achieved_ratio"] == pytest.approx(1 / 1.05, rel=0.01)
    with pytest.raises(ValueError):
        accuracy_figures(starts[:50], rate=100, window_s=1.0)


def test_e2e_expects_one_message_per_page_and_detail() -> None:
    assert expected_messages(SEQ.pages, SEQ.items, SEQ.fanout) == SEQ.pages
    assert expected_messages(FANOUT.pages, FANOUT.items, FANOUT.fanout) == FANOUT.pages + FANOUT.items


def _run(contender: str, scenario: Scenario, wall: float, **raw: Any) -> RunResult:
    return RunResult(contender, scenario.name, 1, ok=True, wall_s=wall, peak_rss_mb=60.0, verified=True,
                     raw={"contender": contender, "wall_s": wall, **raw})  # fmt: skip


def test_report_reads_the_stack_results_and_judges_the_targets() -> None:
    runs = [
        _run("api_direct_grpc", LATENCY, 3.0, p50_ms=70.0, p90_ms=80.0, p99_ms=95.0, max_ms=99.0, rps=600.0),
        _run("api_envoy_grpc", LATENCY, 3.0, p50_ms=70.5, p90_ms=81.0, p99_ms=96.0, max_ms=99.0, rps=590.0),
        _run("api_envoy_rest", LATENCY, 3.0, p50_ms=90.0, p90_ms=99.0, p99_ms=120.0, max_ms=130.0, rps=500.0),
        _run("orchid_engine_off", SEQ, 0.30),
        _run("orchid_engine_redis_limit", SEQ, 0.33, limiter_acquires=400),
        _run("orchid_engine_kafka", FANOUT, 1.0),
        _run("orchid_e2e", FANOUT, 1.5, trigger_s=0.02, last_message_s=1.45),
        _run("limiter_accuracy", ACCURACY, 15.5, achieved_ratio=0.95, achieved_rate=95.0,
             configured_rate=100.0, max_in_any_window=100, span_s=15.2),
    ]  # fmt: skip
    contenders = [BY_ID[r.contender] for r in runs]
    scenarios = [SEQ, FANOUT, LATENCY, ACCURACY]
    summaries = summarize(runs, contenders, scenarios)
    targets = {t.name: t for t in evaluate_targets(summaries, scenarios)}
    assert targets["Envoy's addition to GetPlan p50, gRPC (c=50)"].status == "PASS"
    assert targets["GetPlan p50, REST vs gRPC through Envoy (c=50)"].status == "MISS"  # 90 / 70.5 > 1.2
    assert targets["engine seq with a generous shared (Redis) limit vs no limits"].status == "PASS"
    accuracy = targets["shared limit accuracy: achieved / configured rate, 3 processes"]
    assert accuracy.status == "PASS" and "quick mode" in accuracy.figure
    doc = {
        "mode": "quick", "started_at": "2026-01-01T00:00:00Z", "runs_per_contender": 1,
        "machine": {"nproc": 2, "cpu_model": "x", "memory_gib": 1, "python": "3.11"},
        "versions": {"orchid_git": "abc"}, "scenarios": [asdict(s) for s in scenarios],
        "summaries": summaries_to_dicts(summaries), "targets": targets_to_dicts(list(targets.values())),
        "not_wired": {},
    }  # fmt: skip
    markdown = render_markdown(doc)
    assert "| GetPlan, gRPC through Envoy | 1 | 70.50 | 70.50 |" in markdown
    assert "### Orchid end to end vs the in-process engine" in markdown
    assert "| `fanout` | 1.500 | 0.020 | 1.000 | 1.50x |" in markdown
    assert "| 100 | 95.0 | 0.950 | 100 |" in markdown


def _tiny_stack_run(
    tmp_path: Path, redis: Redis, contender: str, scenario: Scenario, **options: Any
) -> RunResult:
    base = BY_ID[contender]
    stack = {"redis_url": redis.url}
    with running_mock(tmp_path) as mock:
        return run_once(
            replace(base, options={**base.options, **options, "stack": stack}), scenario, rep=1,
            python=Path(sys.executable), base_url=mock.base_url, bootstrap=None, timeout_s=60,
        )  # fmt: skip


@pytest.mark.stack
def test_limiter_overhead_contender_runs_through_redis(tmp_path: Path, redis_server: Redis) -> None:
    tiny = Scenario("seq", pages=3, per_page=5)
    result = _tiny_stack_run(tmp_path, redis_server, "orchid_engine_redis_limit", tiny)
    assert result.ok, result.error
    assert result.verified and result.served == {"pages": 3}
    assert result.raw["limiter_acquires"] == 3 and result.raw["mode"] == "overhead"


@pytest.mark.stack
def test_limiter_accuracy_contender_merges_its_processes(tmp_path: Path, redis_server: Redis) -> None:
    # 3 processes x 8 detail calls behind 10 calls per second: about 1.4 s of limited calls.
    tiny = limiter_accuracy(1, rate=24)
    result = _tiny_stack_run(tmp_path, redis_server, "limiter_accuracy", tiny, rate=10)
    assert result.ok, result.error
    assert result.served == {"pages": 3, "items": 24} and result.verified
    raw = result.raw
    assert raw["calls"] == 24 and raw["processes"] == 3 and raw["configured_rate"] == 10
    assert raw["max_in_any_window"] <= 10
    assert 0 < raw["achieved_ratio"] <= 1.5
