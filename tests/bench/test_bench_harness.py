"""Smoke tests of the bench harness: one contender, tiny scenarios, result shapes only (no timing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from bench.harness import RunResult, run_once
from bench.mock_server import running_mock
from bench.report import evaluate_targets, summarize
from bench.roster import CONTENDERS
from bench.scenarios import SCENARIOS, Scenario

BARE_AIOHTTP = next(c for c in CONTENDERS if c.id == "bare_aiohttp")
TINY_FANOUT = Scenario("fanout", pages=3, per_page=5, fanout=True, concurrency=4, latency_ms=1)


def test_fanout_ideal_is_the_issue_figure() -> None:
    assert SCENARIOS["full"]["fanout"].ideal_s == pytest.approx(0.4)
    assert SCENARIOS["full"]["seq"].pages == 2000
    assert SCENARIOS["full"]["fanout_big"].items == 100_000


def test_one_contender_run_is_verified_against_the_mock(tmp_path: Path) -> None:
    with running_mock(tmp_path) as mock:
        result = run_once(
            BARE_AIOHTTP, TINY_FANOUT, rep=1, python=Path(sys.executable), base_url=mock.base_url,
            bootstrap=None, timeout_s=60,
        )  # fmt: skip
    assert result.ok, result.error
    assert result.served == {"pages": 3, "items": 15}
    assert result.verified
    assert result.wall_s is not None and result.wall_s > 0
    assert result.peak_rss_mb is not None and result.peak_rss_mb > 0
    assert result.raw["contender"] == "bare_aiohttp"
    assert result.raw["details"] == 15
    assert result.raw["records"] == 30


def test_a_run_that_skipped_work_shows_as_unchecked() -> None:
    short = RunResult("bare_aiohttp", "fanout", 1, ok=True, wall_s=0.1, peak_rss_mb=40.0,
                      served={"pages": 3}, verified=False)  # fmt: skip
    (summary,) = summarize([short], [BARE_AIOHTTP], [TINY_FANOUT])
    assert summary.verified is False
    assert summary.vs_ideal == pytest.approx(0.1 / TINY_FANOUT.ideal_s)  # type: ignore[operator]


def test_targets_are_not_applicable_without_orchid() -> None:
    ok = RunResult("bare_aiohttp", "seq", 1, ok=True, wall_s=0.1, peak_rss_mb=40.0, verified=True)
    targets = evaluate_targets(summarize([ok], [BARE_AIOHTTP], [SCENARIOS["quick"]["seq"]]), [])
    assert {t.status for t in targets} == {"N/A"}


@pytest.mark.slow
def test_cli_writes_markdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_main([
        "--quick", "--only", "seq", "--contenders", "bare_aiohttp", "--runs", "1",
        "--results-dir", str(tmp_path), "--ceiling-seconds", "0",
    ])  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["mode"] == "quick"
    assert {"nproc", "cpu_model", "python"} <= doc["machine"].keys()
    assert {"python", "aiohttp", "httpx", "orchid_git"} <= doc["versions"].keys()
    (summary,) = doc["summaries"]
    assert summary["contender"] == "bare_aiohttp"
    assert summary["runs"] == 1 and summary["verified"] is True
    assert summary["min_s"] is not None and summary["median_s"] is not None
    assert "| bare aiohttp + uvloop |" in (tmp_path / "latest.md").read_text()
    assert "### Targets" in capsys.readouterr().out
