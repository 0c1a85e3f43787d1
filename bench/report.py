"""From raw runs to figures: min / median per contender and scenario, ratios, targets, and the
markdown and JSON files under bench/results/. Pure apart from ``write_results``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import RunResult
from bench.roster import BASELINE, Contender
from bench.scenarios import Scenario

__all__ = ["Summary", "Target", "evaluate_targets", "render_markdown", "summarize", "write_results"]

ENGINE_EMITTING = "orchid_engine_kafka"
RSS_LIMIT_MB = 300.0
RSS_TARGET_ITEMS = 100_000


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
    )


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
        f"Wall time of the work only (imports excluded), {doc['runs_per_contender']} runs each, every "
        "contender in its own process; rate = pages/s (seq) or requests/s (fan-out); "
        "x aiohttp = bare aiohttp's median / this median; x ideal = median / ideal.",
        "",
    ]
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    lines = _preamble(doc)
    for row in doc["scenarios"]:
        scenario = Scenario(**row)
        lines += [f"### {_scenario_title(scenario)}", "", *_TABLE_HEAD]
        lines += [_row(Summary(**s)) for s in doc["summaries"] if s["scenario"] == scenario.name]
        lines.append("")
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
