"""Run contenders, each in a process of its own, against the mock API, and check their work.

Every run: zero the mock's request counters, start ``python -m bench.contenders.<x>`` (under the
peer's venv interpreter for dlt / Airbyte), read its one BENCH_RESULT line, then read the counters
back: a run that did not send exactly the scenario's requests is marked unverified, so a
contender cannot look fast by skipping work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.contenders.common import RESULT_PREFIX
from bench.roster import Contender
from bench.scenarios import Scenario

__all__ = ["RunResult", "expected_served", "run_once"]

REPO = Path(__file__).resolve().parent.parent
_STDERR_TAIL_LINES = 15


@dataclass
class RunResult:
    contender: str
    scenario: str
    rep: int
    ok: bool
    wall_s: float | None = None  # the contender's own clock around the work
    process_s: float = 0.0  # the whole process, interpreter start and imports included
    peak_rss_mb: float | None = None
    load_1m: float = 0.0  # the machine's load average as the run started: > cores means noisy
    served: dict[str, int] = field(default_factory=dict)
    verified: bool = False
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_served(scenario: Scenario) -> dict[str, int]:
    if scenario.measure == "executions":  # one detail call per execution (orchid_worker.BENCH_PATH)
        return {"items": scenario.calls}
    if scenario.measure == "enqueue":  # the scheduler only queues: no worker runs them
        return {}
    served = {"pages": scenario.pages}
    if scenario.fanout:
        served["items"] = scenario.items
    return {k: v for k, v in served.items() if v}  # the mock's /stats leaves out zeros


def _mock_stats(base_url: str, *, reset: bool) -> dict[str, int]:
    url = base_url + "/stats" + ("?reset=1" if reset else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return {k: int(v) for k, v in json.loads(response.read()).items() if v}


def run_once(
    contender: Contender,
    scenario: Scenario,
    *,
    rep: int,
    python: Path,
    base_url: str,
    bootstrap: str | None,
    timeout_s: float,
) -> RunResult:
    options = dict(contender.options)
    if contender.needs_kafka:
        options["bootstrap"] = bootstrap
    argv = [
        str(python), "-m", contender.module,
        "--base-url", base_url,
        "--scenario-json", scenario.to_json(),
        "--options-json", json.dumps(options),
    ]  # fmt: skip
    # Peer venvs do not have the repo installed: PYTHONPATH lets them import bench.contenders.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    result = RunResult(
        contender=contender.id,
        scenario=scenario.name,
        rep=rep,
        ok=False,
        load_1m=round(os.getloadavg()[0], 2),
    )
    _mock_stats(base_url, reset=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        result.process_s = time.perf_counter() - started
        result.error = f"timed out after {timeout_s:.0f}s"
        return result
    result.process_s = round(time.perf_counter() - started, 3)
    result.served = _mock_stats(base_url, reset=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    if done.returncode != 0 or line is None:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-_STDERR_TAIL_LINES:])
        result.error = f"exit {done.returncode}: {tail}"
        return result
    raw = json.loads(line[len(RESULT_PREFIX) :])
    result.raw = raw
    result.ok = True
    result.wall_s = float(raw["wall_s"])
    result.peak_rss_mb = float(raw["peak_rss_mb"])
    result.verified = result.served == expected_served(scenario)
    return result


def python_for(contender: Contender, peer_pythons: dict[str, Path]) -> Path:
    return Path(sys.executable) if contender.venv is None else peer_pythons[contender.venv]
