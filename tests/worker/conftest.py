"""Fixtures for the worker tests: clean Redis and PostgreSQL databases of the session's servers
and a mock API (defined in orchid_jobs_support, shared with the scheduler and fault tests)."""

from __future__ import annotations

from orchid_jobs_support import api, jobs_dsn, redis, sessions, tracer_provider

__all__ = ["api", "jobs_dsn", "redis", "sessions", "tracer_provider"]
