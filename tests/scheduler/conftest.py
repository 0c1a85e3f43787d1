"""The scheduler tests share the worker tests' fixtures and helpers (tests/worker)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))

from orchid_jobs_support import api, jobs_dsn, redis, sessions, tracer_provider

__all__ = ["api", "jobs_dsn", "redis", "sessions", "tracer_provider"]
