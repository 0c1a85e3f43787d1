"""What the results were measured on and with: machine facts and versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["machine_facts", "versions"]

_OWN_DISTRIBUTIONS = ("aiohttp", "httpx", "httpx-aiohttp", "uvloop", "orjson", "aiokafka", "jmespath")


def machine_facts() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "machine": platform.machine(),
    }


def versions(repo: Path, peer_versions: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {"python": sys.version.split()[0], "orchid_git": _git_sha(repo)}
    for dist in _OWN_DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    found.update(peer_versions)
    wrk = shutil.which("wrk")
    if wrk:
        found["wrk"] = _first_line([wrk, "--version"])
    return found


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _memory_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def _git_sha(repo: Path) -> str:
    sha = _first_line(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        return "unknown (no commit)"
    dirty = _first_line(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
    return sha + ("+dirty" if dirty else "")


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"
