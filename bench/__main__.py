"""``python -m bench --quick|--full [--only seq,fanout] [--contenders a,b] [--skip-peers]``.

Starts the mock API (and a Tansu broker when an emitting contender runs), measures the mock's
ceiling, runs every contender ``--runs`` times per scenario (interleaved, each run its own
process), then writes bench/results/latest.{md,json} plus a timestamped copy and prints the
table. Exits 1 if a run failed or did not send exactly the scenario's requests; a missed target
is a result, not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ceiling import measure_ceiling
from bench.harness import REPO, RunResult, python_for, run_once
from bench.machine import machine_facts, versions
from bench.mock_server import running_mock
from bench.peers.venvs import PEER_DISTRIBUTION, PeerEnvError, ensure_peer_venv
from bench.report import (
    evaluate_targets,
    render_markdown,
    summaries_to_dicts,
    summarize,
    targets_to_dicts,
    write_results,
)
from bench.roster import NOT_WIRED, Contender, select
from bench.scenarios import Scenario, scenarios_for

RUN_TIMEOUT_S = {"quick": 120.0, "full": 400.0}
# Runs per contender and scenario unless --runs says otherwise: quick mode must stay under 3 minutes
# on 2 busy cores (and some contenders take fewer in quick mode: Contender.quick_max_runs).
DEFAULT_RUNS = {"quick": 2, "full": 3}
# fanout_big judges peak RSS only (the highest of the runs), and one Orchid run of it takes about 50 s
# in full mode: one run per contender keeps `make bench-full` under 15 minutes.
SCENARIO_MAX_RUNS = {"fanout_big": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Orchid vs its ceilings and peers.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="(default) < 3 min")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="< 15 min")
    parser.add_argument(
        "--only",
        help="comma-separated scenarios: seq, fanout, fanout_big, api_latency, limiter_accuracy, worker, "
        "scheduler",
    )
    parser.add_argument("--contenders", help="comma-separated contender ids (see bench/roster.py)")
    parser.add_argument("--skip-peers", action="store_true", help="leave out dlt and Airbyte")
    parser.add_argument(
        "--runs", type=int, help=f"runs per contender and scenario (default: quick {DEFAULT_RUNS['quick']}, "
        f"full {DEFAULT_RUNS['full']})",
    )  # fmt: skip
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--ceiling-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    args.runs = args.runs or DEFAULT_RUNS[args.mode]
    return args


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def prepare_peers(contenders: list[Contender]) -> tuple[list[Contender], dict[str, Path], dict[str, str]]:
    """Create or reuse each peer's venv; a peer whose venv cannot be built is left out, loudly."""
    pythons: dict[str, Path] = {}
    peer_versions: dict[str, str] = {}
    kept: list[Contender] = []
    for contender in contenders:
        if contender.venv is not None and contender.venv not in pythons:
            try:
                venv = ensure_peer_venv(contender.venv, REPO)
            except PeerEnvError as exc:
                print(f"bench: leaving out {contender.id}: {exc}", file=sys.stderr)
                continue
            pythons[contender.venv] = venv.python
            peer_versions[PEER_DISTRIBUTION[contender.venv]] = venv.version()
        kept.append(contender)
    return kept, pythons, peer_versions


@contextlib.contextmanager
def orchid_stack(contenders: list[Contender], root: Path) -> Iterator[list[Contender]]:
    """One whole Orchid stack for every contender that needs it; they get its addresses as
    options["stack"] (bench.contenders.orchid_e2e)."""
    if not any(c.needs_stack for c in contenders):
        yield contenders
        return
    from bench.contenders.orchid_e2e import running_stack

    print("bench: starting an Orchid stack (Postgres, Redis, Kafka, server, Envoy, worker)", file=sys.stderr)
    with contextlib.ExitStack() as exits:
        try:
            facts = exits.enter_context(running_stack(root))
        except Exception as exc:  # the mock-only contenders still run; the report shows the gap
            print(f"bench: leaving out the stack contenders: the stack did not start: {exc}", file=sys.stderr)
            yield [c for c in contenders if not c.needs_stack]
            return
        yield [replace(c, options={**c.options, "stack": facts}) if c.needs_stack else c for c in contenders]


@contextlib.contextmanager
def worker_stack(
    contenders: list[Contender], root: Path, bootstrap: str | None, mock_url: str
) -> Iterator[list[Contender]]:
    """Postgres and Redis for the worker / scheduler contenders, beside the harness's broker and
    mock; they get its addresses as options["worker_stack"] (bench.contenders.orchid_worker)."""
    if not any(c.needs_worker_stack for c in contenders):
        yield contenders
        return
    from bench.contenders.orchid_worker import running_worker_stack

    print(
        "bench: starting the worker stack (Postgres, Redis; the mock and Kafka are shared)", file=sys.stderr
    )
    with contextlib.ExitStack() as exits:
        try:
            assert bootstrap is not None, "the worker contenders need the harness's Kafka broker"
            site = exits.enter_context(
                running_worker_stack(root, kafka_bootstrap=bootstrap, mock_url=mock_url)
            )
        except Exception as exc:  # the others still run; the report shows the gap
            print(
                f"bench: leaving out the worker contenders: their stack did not start: {exc}", file=sys.stderr
            )
            yield [c for c in contenders if not c.needs_worker_stack]
            return
        yield [
            replace(c, options={**c.options, "worker_stack": site}) if c.needs_worker_stack else c
            for c in contenders
        ]


@contextlib.contextmanager
def kafka_broker(needed: bool, root: Path) -> Iterator[str | None]:
    if not needed:
        yield None
        return
    from devstack.servers import KafkaBroker

    broker = KafkaBroker(root / "kafka")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def run_all(
    args: argparse.Namespace, contenders: list[Contender], scenarios: list[Scenario],
    pythons: dict[str, Path], base_url: str, bootstrap: str | None,
) -> list[RunResult]:  # fmt: skip
    runs: list[RunResult] = []
    # Interleaved (rep, scenario, contender) so a slow minute on the machine hits everyone alike.
    for rep in range(1, args.runs + 1):
        for scenario in scenarios:
            for contender in contenders:
                if contender.scenarios is not None and scenario.name not in contender.scenarios:
                    continue
                if contender.max_runs is not None and rep > contender.max_runs:
                    continue
                if rep > SCENARIO_MAX_RUNS.get(scenario.name, rep):
                    continue
                if (
                    args.mode == "quick"
                    and contender.quick_max_runs is not None
                    and rep > contender.quick_max_runs
                ):
                    continue
                result = run_once(
                    contender, scenario, rep=rep, python=python_for(contender, pythons), base_url=base_url,
                    bootstrap=bootstrap, timeout_s=RUN_TIMEOUT_S[args.mode],
                )  # fmt: skip
                runs.append(result)
                _progress(result, args.runs)
    return runs


def _taking_part(contenders: list[Contender], scenarios: list[Scenario]) -> list[Contender]:
    """The contenders with at least one selected scenario (no stack for a mock-only run)."""
    names = {s.name for s in scenarios}
    return [c for c in contenders if c.scenarios is None or c.scenarios & names]


def _progress(r: RunResult, total: int) -> None:
    if r.ok:
        note = "ok" if r.verified else f"UNVERIFIED (served {r.served})"
        text = f"{r.wall_s:.3f}s (process {r.process_s:.1f}s, peak {r.peak_rss_mb:.0f} MB) {note}"
    else:
        text = f"FAILED: {(r.error or '').splitlines()[0] if r.error else ''}"
    print(f"[{r.rep}/{total}] {r.scenario:<11} {r.contender:<20} {text}", file=sys.stderr, flush=True)


def fastest_request_rate(runs: list[RunResult], scenarios: list[Scenario]) -> float:
    by_name = {s.name: s for s in scenarios}
    rates = [by_name[r.scenario].requests / r.wall_s for r in runs if r.ok and r.wall_s]
    return max(rates, default=0.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    scenarios = scenarios_for(args.mode, _split(args.only))
    contenders, pythons, peer_versions = prepare_peers(
        select(_split(args.contenders), skip_peers=args.skip_peers)
    )
    needs_kafka = any(c.needs_kafka for c in contenders)
    with tempfile.TemporaryDirectory(prefix="orchid-bench-") as tmp:
        root = Path(tmp)
        with running_mock(root) as mock, kafka_broker(needs_kafka, root) as bootstrap:
            ceiling = (
                measure_ceiling(mock.base_url, args.ceiling_seconds) if args.ceiling_seconds > 0 else None
            )
            taking_part = _taking_part(contenders, scenarios)
            with (
                orchid_stack(taking_part, root) as with_stack,
                worker_stack(with_stack, root, bootstrap, mock.base_url) as ready,
            ):
                runs = run_all(args, ready, scenarios, pythons, mock.base_url, bootstrap)
    summaries = summarize(runs, contenders, scenarios)
    doc: dict[str, Any] = {
        "schema": 1,
        "mode": args.mode,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "runs_per_contender": args.runs,
        "machine": machine_facts(),
        "versions": versions(REPO, peer_versions),
        "mock_ceiling": ceiling.to_dict() if ceiling else None,
        "max_load_1m": max((r.load_1m for r in runs), default=0.0),
        "fastest_request_rate": round(fastest_request_rate(runs, scenarios), 1),
        "scenarios": [asdict(s) for s in scenarios],
        "contenders": [{"id": c.id, "label": c.label, "kind": c.kind, "venv": c.venv} for c in contenders],
        "summaries": summaries_to_dicts(summaries),
        "targets": targets_to_dicts(evaluate_targets(summaries, scenarios)),
        "not_wired": NOT_WIRED,
        "runs": [r.to_dict() for r in runs],
    }
    markdown_path, json_path = write_results(doc, args.results_dir)
    print(render_markdown(doc))
    print(f"bench: {args.mode} run took {doc['duration_s']:.0f}s; wrote {markdown_path} and {json_path}")
    bad = [r for r in runs if not (r.ok and r.verified)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
