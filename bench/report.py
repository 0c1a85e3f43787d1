"""From raw runs to figures: min / median per contender and scenario, ratios, targets, and the
markdown and JSON files under bench/results/. Pure apart from ``write_results``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.contenders.api_latency import SERIAL_CALLS
from bench.harness import RunResult
from bench.roster import BASELINE, Contender
from bench.scenarios import Scenario

__all__ = ["Summary", "Target", "evaluate_targets", "render_markdown", "summarize", "write_results"]

ENGINE_EMITTING = "orchid_engine_kafka"
RSS_LIMIT_MB = 300.0
RSS_TARGET_ITEMS = 100_000

# Stack scenarios (bench.contenders.api_latency / orchid_e2e / limiter): their figures are in each
# run's raw result; a summary keeps the median (and the min, as "<name>_min") of these.
METRIC_KEYS = (
    "p50_ms", "p90_ms", "p99_ms", "max_ms", "rps", "achieved_rate", "achieved_ratio", "configured_rate",
    "max_in_any_window", "span_s", "trigger_s", "last_message_s", "serial_p50_ms", "serial_p99_ms",
    "redis_commands_per_request", "executions_per_s", "worker_cpu_ms_per_execution",
    "db_commits_per_execution", "machine_busy_pct", "due_to_all_in_stream_s", "in_stream",
)  # fmt: skip
API_DIRECT, API_ENVOY_GRPC, API_ENVOY_REST = "api_direct_grpc", "api_envoy_grpc", "api_envoy_rest"
ENGINE_OFF, ENGINE_REDIS_LIMIT, LIMITER_ACCURACY, E2E = (
    "orchid_engine_off", "orchid_engine_redis_limit", "limiter_accuracy", "orchid_e2e",
)  # fmt: skip
ENVOY_OVERHEAD_MS = 1.0
REST_VS_GRPC = 1.2
LIMITER_OVERHEAD_MIN = 0.85
ACCURACY_RANGE = (0.9, 1.0)
ACCURACY_TARGET_S = 60.0
WORKER_1, WORKER_2, SCHEDULER = "orchid_worker_1", "orchid_worker_2", "orchid_scheduler"
WORKER_MIN_RATE = 300.0  # executions/s of one worker process
WORKER_SCALING = 1.6  # two worker processes vs one
SCHEDULER_PAIRS = 10_000
SCHEDULER_BUDGET_S = 5.0
# The worker and scheduler figures share the machine with everything they talk to.
SATURATION_NOTE = (
    "This machine has 2 cores, shared by the worker (or scheduler) processes, Postgres, Redis, Tansu "
    "and the mock API, and by the idle stack of the other scenarios: the figures are what the whole "
    "system does on 2 saturated cores (see machine busy %), not one worker's ceiling. A second worker "
    "process has no core of its own here, so the 2-process figure measures contention more than scaling."
)


@dataclass(frozen=True, slots=True)
class Summary:
    contender: str
    label: str
    scenario: str
    runs: int  # successful runs
    failed: int
    verified: bool  # every successful run sent exactly the scenario's requests
    min_s: float | None
    median_s: float | None
    peak_rss_mb: float | None  # the highest of the runs
    rate: float | None  # pages/s (sequential) or requests/s (fan-out), from the median
    vs_baseline: float | None  # bare aiohttp median / this median: 1.0 = as fast as the ceiling
    vs_ideal: float | None  # median / the scenario's ideal wall time
    error: str | None
    # Median (and "<key>_min") over the runs of each METRIC_KEYS figure the contender reported.
    metrics: dict[str, float] | None = None
    calls_per_best: float | None = None  # "executions" / "enqueue": calls / the fastest run's wall time


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    figure: str
    status: str  # PASS, MISS or N/A


def summarize(
    runs: Sequence[RunResult], contenders: Sequence[Contender], scenarios: Sequence[Scenario]
) -> list[Summary]:
    out: list[Summary] = []
    for scenario in scenarios:
        base = _median([r for r in runs if r.contender == BASELINE and r.scenario == scenario.name])
        for contender in contenders:
            mine = [r for r in runs if r.contender == contender.id and r.scenario == scenario.name]
            if mine:
                out.append(_summary(contender, scenario, mine, base))
    return out


def _median(runs: Sequence[RunResult]) -> float | None:
    walls = [r.wall_s for r in runs if r.ok and r.wall_s is not None]
    return statistics.median(walls) if walls else None


def _summary(
    contender: Contender, scenario: Scenario, runs: Sequence[RunResult], base: float | None
) -> Summary:
    good = [r for r in runs if r.ok and r.wall_s is not None]
    walls = [r.wall_s for r in good if r.wall_s is not None]
    median = statistics.median(walls) if walls else None
    work = scenario.pages if not scenario.fanout else scenario.requests
    if scenario.measure in ("executions", "enqueue"):
        work = scenario.calls
    ideal = scenario.ideal_s
    return Summary(
        contender=contender.id,
        label=contender.label,
        scenario=scenario.name,
        runs=len(good),
        failed=len(runs) - len(good),
        verified=bool(good) and all(r.verified for r in good),
        min_s=min(walls) if walls else None,
        median_s=median,
        peak_rss_mb=max((r.peak_rss_mb for r in good if r.peak_rss_mb is not None), default=None),
        rate=work / median if median else None,
        vs_baseline=base / median if base and median else None,
        vs_ideal=median / ideal if median and ideal else None,
        error=next((r.error for r in runs if r.error), None),
        metrics=_metrics(good),
        calls_per_best=scenario.calls / min(walls) if scenario.calls and walls and min(walls) else None,
    )


def _metrics(runs: Sequence[RunResult]) -> dict[str, float] | None:
    out: dict[str, float] = {}
    for key in METRIC_KEYS:
        values = [float(r.raw[key]) for r in runs if isinstance(r.raw.get(key), int | float)]
        if values:
            out[key] = statistics.median(values)
            out[f"{key}_min"] = min(values)
    return out or None


def _find(summaries: Sequence[Summary], contender: str, scenario: str) -> Summary | None:
    return next((s for s in summaries if s.contender == contender and s.scenario == scenario), None)


def _ratio_target(name: str, goal: float, mine: Summary | None, other: Summary | None) -> Target:
    """``mine`` must be at least ``goal`` times faster than ``other`` (by median wall time)."""
    if not (mine and other and mine.median_s and other.median_s):
        return Target(name, f">= {goal:g}x", "not measured", "N/A")
    ratio = other.median_s / mine.median_s
    return Target(name, f">= {goal:g}x", f"{ratio:.2f}x", "PASS" if ratio >= goal else "MISS")


def evaluate_targets(summaries: Sequence[Summary], scenarios: Sequence[Scenario]) -> list[Target]:
    engine_seq = _find(summaries, ENGINE_EMITTING, "seq")
    targets = [
        _ratio_target("engine seq pagination (emission on) vs bare aiohttp", 0.5, engine_seq,
                      _find(summaries, BASELINE, "seq")),
        _ratio_target("engine seq pagination (emission on) vs dlt", 3.0, engine_seq,
                      _find(summaries, "dlt_rest_api", "seq")),
        _ratio_target("engine seq pagination (emission on) vs Airbyte", 3.0, engine_seq,
                      _find(summaries, "airbyte_lowcode", "seq")),
    ]  # fmt: skip
    fan = _find(summaries, ENGINE_EMITTING, "fanout")
    if fan and fan.vs_ideal:
        status = "PASS" if fan.vs_ideal <= 1.3 else "MISS"
        targets.append(Target("engine fan-out wall time (emission on) vs ideal", "<= 1.3x",
                              f"{fan.vs_ideal:.2f}x", status))  # fmt: skip
    else:
        targets.append(
            Target("engine fan-out wall time (emission on) vs ideal", "<= 1.3x", "not measured", "N/A")
        )
    targets.append(_rss_target(summaries, scenarios))
    targets += _stack_targets(summaries, scenarios)
    targets += _worker_targets(summaries, scenarios)
    return targets


def _worker_targets(summaries: Sequence[Summary], scenarios: Sequence[Scenario]) -> list[Target]:
    """Worker executions/s (one process, and two vs one) and the scheduler's enqueue time."""
    one, two = _find(summaries, WORKER_1, "worker"), _find(summaries, WORKER_2, "worker")
    name = "one worker process: executions/s of a one-request plan (emission on)"
    goal = f">= {WORKER_MIN_RATE:g}/s"
    if one and one.rate:
        best = f", best run {one.calls_per_best:,.0f}/s" if one.calls_per_best else ""
        figure = f"{one.rate:,.0f}/s = {one.rate / WORKER_MIN_RATE:.2f}x the goal{best}"
        targets = [Target(name, goal, figure, "PASS" if one.rate >= WORKER_MIN_RATE else "MISS")]
    else:
        targets = [Target(name, goal, "not measured", "N/A")]
    name, goal = "two worker processes vs one: executions/s", f">= {WORKER_SCALING:g}x"
    if one and two and one.rate and two.rate:
        ratio = two.rate / one.rate
        figure = f"{ratio:.2f}x ({two.rate:,.0f} vs {one.rate:,.0f}/s; 2 cores)"
        targets.append(Target(name, goal, figure, "PASS" if ratio >= WORKER_SCALING else "MISS"))
    else:
        targets.append(Target(name, goal, "not measured", "N/A"))
    sched = _find(summaries, SCHEDULER, "scheduler")
    scenario = next((s for s in scenarios if s.measure == "enqueue"), None)
    name = f"one scheduler: {SCHEDULER_PAIRS:,} due pairs all in the stream, after their due time"
    goal = f"<= {SCHEDULER_BUDGET_S:g} s"
    if sched and sched.median_s and scenario:
        figure = f"{sched.median_s:.2f} s = {sched.median_s / SCHEDULER_BUDGET_S:.2f}x the budget"
        if sched.min_s is not None and sched.runs > 1:
            figure += f" (best run {sched.min_s:.2f} s)"
        if scenario.calls < SCHEDULER_PAIRS:
            targets.append(Target(name, goal, f"{figure} at {scenario.calls:,} pairs (quick mode)", "N/A"))
        else:
            status = "PASS" if sched.median_s <= SCHEDULER_BUDGET_S and sched.verified else "MISS"
            targets.append(Target(name, goal, figure, status))
    else:
        targets.append(Target(name, goal, "not measured", "N/A"))
    return targets


def _metric(summary: Summary | None, key: str) -> float | None:
    return summary.metrics.get(key) if summary and summary.metrics else None


def _stack_targets(summaries: Sequence[Summary], scenarios: Sequence[Scenario]) -> list[Target]:
    """GetPlan latency through Envoy, and the shared limiter's overhead and accuracy."""
    latency = next((s for s in scenarios if s.measure == "latency"), None)
    at = f" (c={latency.concurrency})" if latency else ""
    direct = _metric(_find(summaries, API_DIRECT, "api_latency"), "p50_ms")
    envoy = _metric(_find(summaries, API_ENVOY_GRPC, "api_latency"), "p50_ms")
    rest = _metric(_find(summaries, API_ENVOY_REST, "api_latency"), "p50_ms")
    name = f"Envoy's addition to GetPlan p50, gRPC{at}"
    goal = f"<= {ENVOY_OVERHEAD_MS:g} ms"
    if direct is not None and envoy is not None:
        added = round(envoy - direct, 2) + 0.0  # no "-0.00"
        figure = f"{added:+.2f} ms ({envoy:.2f} through Envoy - {direct:.2f} direct)"
        serial_direct = _metric(_find(summaries, API_DIRECT, "api_latency"), "serial_p50_ms")
        serial_envoy = _metric(_find(summaries, API_ENVOY_GRPC, "api_latency"), "serial_p50_ms")
        if serial_direct is not None and serial_envoy is not None:
            figure += f"; one call at a time: {round(serial_envoy - serial_direct, 2) + 0.0:+.2f} ms"
        targets = [Target(name, goal, figure, "PASS" if added <= ENVOY_OVERHEAD_MS else "MISS")]
    else:
        targets = [Target(name, goal, "not measured", "N/A")]
    name, goal = f"GetPlan p50, REST vs gRPC through Envoy{at}", f"<= {REST_VS_GRPC:g}x"
    if rest is not None and envoy:
        ratio = rest / envoy
        figure = f"{ratio:.2f}x ({rest:.2f} / {envoy:.2f} ms)"
        targets.append(Target(name, goal, figure, "PASS" if ratio <= REST_VS_GRPC else "MISS"))
    else:
        targets.append(Target(name, goal, "not measured", "N/A"))
    limited, free = _find(summaries, ENGINE_REDIS_LIMIT, "seq"), _find(summaries, ENGINE_OFF, "seq")
    name, goal = (
        "engine seq with a generous shared (Redis) limit vs no limits",
        f">= {LIMITER_OVERHEAD_MIN:g}x",
    )
    if limited and free and limited.median_s and free.median_s:
        ratio = free.median_s / limited.median_s
        status = "PASS" if ratio >= LIMITER_OVERHEAD_MIN else "MISS"
        targets.append(
            Target(name, goal, f"{ratio:.2f}x ({limited.median_s:.3f} s vs {free.median_s:.3f} s)", status)
        )
    else:
        targets.append(Target(name, goal, "not measured", "N/A"))
    accuracy = _find(summaries, LIMITER_ACCURACY, "limiter_accuracy")
    low, high = ACCURACY_RANGE
    name, goal = "shared limit accuracy: achieved / configured rate, 3 processes", f"{low:g} to {high:g}"
    achieved = _metric(accuracy, "achieved_ratio")
    span = _metric(accuracy, "span_s")
    if achieved is not None and accuracy is not None:
        peak = _metric(accuracy, "max_in_any_window")
        figure = f"{achieved:.3f} over {span or 0:.0f} s, at most {peak or 0:.0f} calls in any 1 s window"
        if span is not None and span < ACCURACY_TARGET_S * 0.9:
            figure += " (quick mode: the issue's minute is full mode)"
        targets.append(Target(name, goal, figure, "PASS" if low <= achieved <= high else "MISS"))
    else:
        targets.append(Target(name, goal, "not measured", "N/A"))
    return targets


def _rss_target(summaries: Sequence[Summary], scenarios: Sequence[Scenario]) -> Target:
    name = f"engine {RSS_TARGET_ITEMS:,}-item fan-out peak RSS (emission on)"
    big = next((s for s in scenarios if s.measure == "memory"), None)
    mine = _find(summaries, ENGINE_EMITTING, big.name) if big else None
    if big is None or mine is None or mine.peak_rss_mb is None:
        return Target(name, f"< {RSS_LIMIT_MB:g} MB", "not measured", "N/A")
    figure = f"{mine.peak_rss_mb:.0f} MB"
    if big.items < RSS_TARGET_ITEMS:
        return Target(name, f"< {RSS_LIMIT_MB:g} MB", f"{figure} at {big.items:,} items (quick mode)", "N/A")
    return Target(
        name, f"< {RSS_LIMIT_MB:g} MB", figure, "PASS" if mine.peak_rss_mb < RSS_LIMIT_MB else "MISS"
    )


# --- Rendering ----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _scenario_title(s: Scenario) -> str:
    text = f"`{s.name}`: {s.pages:,} pages x {s.per_page:,} items"
    if s.fanout:
        text += f", then {s.items:,} detail calls at {s.latency_ms} ms latency, concurrency {s.concurrency}"
        if s.ideal_s:
            text += f" (ideal {s.ideal_s:g} s)"
    return text


_TABLE_HEAD = (
    "| Contender | runs | min s | median s | rate /s | x aiohttp | x ideal | peak RSS MB | work checked |",
    "| --- | --: | --: | --: | --: | --: | --: | --: | --- |",
)


def _row(s: Summary) -> str:
    checked = "yes" if s.verified else ("FAILED" if s.runs == 0 else "NO")
    runs = f"{s.runs} (+{s.failed} failed)" if s.failed else str(s.runs)
    cells = [
        s.label, runs, _fmt(s.min_s, ".3f"), _fmt(s.median_s, ".3f"), _fmt(s.rate, ",.0f"),
        _fmt(s.vs_baseline, ".2f"), _fmt(s.vs_ideal, ".2f"), _fmt(s.peak_rss_mb, ".0f"), checked,
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def _preamble(doc: dict[str, Any]) -> list[str]:
    m, v = doc["machine"], doc["versions"]
    lines = [
        f"## Orchid bench: {doc['mode']} mode, {doc['started_at']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}. "
        f"Orchid {v['orchid_git']}; aiohttp {v.get('aiohttp')}, httpx {v.get('httpx')}, "
        f"dlt {v.get('dlt', '-')}, airbyte-cdk {v.get('airbyte-cdk', '-')}.",
    ]
    ceiling = doc.get("mock_ceiling")
    if ceiling:
        rates = ", ".join(f"{k} {val:,.0f} req/s" for k, val in ceiling["requests_per_s"].items())
        lines.append(
            f"Mock API ceiling ({ceiling['tool']}, concurrency {ceiling['concurrency']}, same 2 cores): "
            f"{rates}; the fastest rate any contender reached: {doc['fastest_request_rate']:,.0f} req/s."
        )
    busy = doc.get("max_load_1m", 0.0) > (m.get("nproc") or 1)
    if busy:
        lines.append(
            f"Note: the machine's 1-minute load average reached {doc['max_load_1m']:.1f} on "
            f"{m['nproc']} cores during the runs: other work shared the CPU, so read min over median."
        )
    lines += [
        "",
        f"Wall time of the work only (imports excluded), {doc['runs_per_contender']} runs each (fewer "
        "where the runs column says so), every contender in its own process; "
        "rate = pages/s (seq) or requests/s (fan-out); "
        "x aiohttp = bare aiohttp's median / this median; x ideal = median / ideal.",
        "",
    ]
    return lines


def _latency_section(scenario: Scenario, rows: list[Summary]) -> list[str]:
    lines = [
        f"### `{scenario.name}`: GetPlan at concurrency {scenario.concurrency}, "
        f"{scenario.calls:,} timed calls per run after {scenario.warmup:,} warm-up calls",
        "",
        "One load-generator process per path (uvloop; grpc.aio, or aiohttp with keep-alive and "
        f"{scenario.concurrency} connections) against one plan of a real `python -m server` behind Envoy. "
        "The server, Envoy, the load generator (and the idle worker and scheduler) share the "
        "machine's cores; nothing is pinned. At a fixed concurrency the p50 is mostly queueing: "
        "about concurrency / throughput, so anything that takes CPU from the server (Envoy "
        "included) shows there magnified. The last column is the same call one at a time "
        f"({SERIAL_CALLS} calls after the timed ones): the path's own cost.",
        "",
        "| Path | runs | p50 ms (min) | p50 ms (median) | p90 ms | p99 ms | max ms | calls/s "
        "| p50 ms one at a time | |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --- |",
    ]
    for s in rows:
        mt = s.metrics or {}
        runs = f"{s.runs} (+{s.failed} failed)" if s.failed else str(s.runs)
        cells = [
            s.label, runs, _fmt(mt.get("p50_ms_min"), ".2f"), _fmt(mt.get("p50_ms"), ".2f"),
            _fmt(mt.get("p90_ms"), ".2f"), _fmt(mt.get("p99_ms"), ".2f"), _fmt(mt.get("max_ms"), ".1f"),
            _fmt(mt.get("rps"), ",.0f"), _fmt(mt.get("serial_p50_ms"), ".2f"),
            "ok" if s.verified else ("FAILED" if s.runs == 0 else "NO"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _accuracy_section(scenario: Scenario, rows: list[Summary]) -> list[str]:
    lines = [
        f"### `{scenario.name}`: {scenario.pages} engine processes, {scenario.items:,} detail calls behind "
        "one shared Redis limit",
        "",
        "Each process fans out (concurrency "
        f"{scenario.concurrency}) over its {scenario.per_page:,} items; the limit is per endpoint, shared "
        "by all. Achieved rate = (calls - R) / (last start - R-th start) over the merged start times, "
        "so the first window's burst does not count.",
        "",
        "| Contender | runs | configured /s | achieved /s | achieved / configured | most in any window "
        "| span s | |",
        "| --- | --: | --: | --: | --: | --: | --: | --- |",
    ]
    for s in rows:
        mt = s.metrics or {}
        cells = [
            s.label, str(s.runs), _fmt(mt.get("configured_rate"), ".0f"),
            _fmt(mt.get("achieved_rate"), ".1f"),
            _fmt(mt.get("achieved_ratio"), ".3f"), _fmt(mt.get("max_in_any_window"), ".0f"),
            _fmt(mt.get("span_s"), ".1f"), "ok" if s.verified else ("FAILED" if s.runs == 0 else "NO"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _worker_section(scenario: Scenario, rows: list[Summary]) -> list[str]:
    if scenario.measure == "executions":
        lines = [
            f"### `{scenario.name}`: {scenario.calls:,} executions of a one-request plan, emission on",
            "",
            "Real `python -m worker` processes (WORKER_CONCURRENCY "
            f"{scenario.concurrency} each) on their own Postgres and Redis, the harness's Tansu broker and "
            "mock API. The executions (200 (plan, config) pairs) are inserted and their jobs pushed to "
            "the stream directly; the clock runs from the first push until every execution is "
            "`success`. Each execution sends one GET to the mock and publishes its response to Kafka; "
            "the mock's counters must show exactly one request per execution. Peak RSS: the largest "
            "worker process.",
            "",
            "| Workers | runs | min s | median s | executions/s (median) | executions/s (best) "
            "| worker CPU ms / execution | DB commits / execution | machine busy % | peak RSS MB | |",
            "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |",
        ]
        for s in rows:
            mt = s.metrics or {}
            cells = [
                s.label, _runs(s), _fmt(s.min_s, ".3f"), _fmt(s.median_s, ".3f"), _fmt(s.rate, ",.0f"),
                _fmt(s.calls_per_best, ",.0f"), _fmt(mt.get("worker_cpu_ms_per_execution"), ".2f"),
                _fmt(mt.get("db_commits_per_execution"), ".2f"), _fmt(mt.get("machine_busy_pct"), ".0f"),
                _fmt(s.peak_rss_mb, ".0f"), _checked(s),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines = [
            f"### `{scenario.name}`: {scenario.calls:,} (plan, config) pairs due at one instant",
            "",
            "One real `python -m scheduler` on its own Postgres and Redis. 100 plans x "
            f"{scenario.calls // 100:,} configs, every 60 s, each with a last run that makes it due "
            "8 s after the scheduler starts, 10 older runs per pair and 10,000 other queued executions "
            "of the tenant. The clock runs from the due instant (the database's clock) until every "
            "pair's job is in the Redis stream. Peak RSS: the scheduler process.",
            "",
            "| Contender | runs | min s | median s | pairs/s (median) | in the stream | peak RSS MB | |",
            "| --- | --: | --: | --: | --: | --: | --: | --- |",
        ]
        for s in rows:
            mt = s.metrics or {}
            cells = [
                s.label, _runs(s), _fmt(s.min_s, ".3f"), _fmt(s.median_s, ".3f"), _fmt(s.rate, ",.0f"),
                _fmt(mt.get("in_stream"), ",.0f"), _fmt(s.peak_rss_mb, ".0f"), _checked(s),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", SATURATION_NOTE, ""]


def _runs(s: Summary) -> str:
    return f"{s.runs} (+{s.failed} failed)" if s.failed else str(s.runs)


def _checked(s: Summary) -> str:
    return "ok" if s.verified else ("FAILED" if s.runs == 0 else "NO")


def _e2e_section(summaries: list[Summary]) -> list[str]:
    """Orchid end to end next to the in-process engine, per scenario both ran."""
    rows = []
    for e2e in (s for s in summaries if s.contender == E2E and s.median_s):
        kafka = next(
            (s for s in summaries if s.contender == ENGINE_EMITTING and s.scenario == e2e.scenario), None
        )
        off = next((s for s in summaries if s.contender == ENGINE_OFF and s.scenario == e2e.scenario), None)
        assert e2e.median_s is not None
        ratio_kafka = e2e.median_s / kafka.median_s if kafka and kafka.median_s else None
        ratio_off = e2e.median_s / off.median_s if off and off.median_s else None
        mt = e2e.metrics or {}
        cells = [
            f"`{e2e.scenario}`", f"{e2e.median_s:.3f}", _fmt(mt.get("trigger_s"), ".3f"),
            _fmt(kafka.median_s if kafka else None, ".3f"), _fmt(ratio_kafka, ".2f", "x"),
            _fmt(off.median_s if off else None, ".3f"), _fmt(ratio_off, ".2f", "x"),
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "### Orchid end to end vs the in-process engine",
        "",
        "End to end: TriggerPlan (gRPC through Envoy) -> Redis stream -> `python -m worker` -> the mock "
        "-> Kafka, until a consumer has read the execution's last api-responses message and "
        "GetExecution says success. Median seconds.",
        "",
        "| Scenario | end to end | of which TriggerPlan | engine, emission to Kafka | e2e / engine | "
        "engine, emission off | e2e / engine off |",
        "| --- | --: | --: | --: | --: | --: | --: |",
        *rows,
        "",
    ]


def render_markdown(doc: dict[str, Any]) -> str:
    lines = _preamble(doc)
    summaries = [Summary(**s) for s in doc["summaries"]]
    for row in doc["scenarios"]:
        scenario = Scenario(**row)
        mine = [s for s in summaries if s.scenario == scenario.name]
        if scenario.measure == "latency":
            lines += _latency_section(scenario, mine)
            continue
        if scenario.measure == "accuracy":
            lines += _accuracy_section(scenario, mine)
            continue
        if scenario.measure in ("executions", "enqueue"):
            lines += _worker_section(scenario, mine)
            continue
        lines += [f"### {_scenario_title(scenario)}", "", *_TABLE_HEAD]
        lines += [_row(s) for s in mine]
        lines.append("")
    lines += _e2e_section(summaries)
    lines += ["### Targets", "", "| Target | Goal | Figure | |", "| --- | --- | --- | --- |"]
    lines += [f"| {t['name']} | {t['goal']} | {t['figure']} | {t['status']} |" for t in doc["targets"]]
    if doc.get("not_wired"):
        lines += ["", "Not measured yet: " + "; ".join(doc["not_wired"].values()) + "."]
    errors = [s for s in doc["summaries"] if s["error"]]
    if errors:
        lines += ["", "Errors:"]
        lines += [f"- {s['contender']} / {s['scenario']}: {s['error'][:300]}" for s in errors]
    return "\n".join(lines) + "\n"


def write_results(doc: dict[str, Any], results_dir: Path) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(doc)
    body = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    stamp = doc["started_at"].replace(":", "").replace("-", "")
    # latest: the most recent run of either mode; latest-<mode>: so a quick run does not hide the
    # last full one (the README's table comes from a full run).
    for name in (f"{stamp}-{doc['mode']}", f"latest-{doc['mode']}", "latest"):
        (results_dir / f"{name}.json").write_text(body)
        (results_dir / f"{name}.md").write_text(markdown)
    return results_dir / "latest.md", results_dir / "latest.json"


def summaries_to_dicts(summaries: Sequence[Summary]) -> list[dict[str, Any]]:
    return [asdict(s) for s in summaries]


def targets_to_dicts(targets: Sequence[Target]) -> list[dict[str, Any]]:
    return [asdict(t) for t in targets]
