"""Orchid's one typed settings object, read from environment variables named as in the spec.

Every process (server, worker, scheduler, devstack) calls ``Settings.from_env()`` once in its
entry point and passes the parts down; no module reads ``os.environ`` at import time.
"""

from __future__ import annotations

from settings.model import (
    AuthSettings,
    DatabaseSettings,
    EgressSettings,
    ExecutionLimits,
    KafkaSettings,
    ObservabilitySettings,
    RedisSettings,
    SchedulerSettings,
    SecretsSettings,
    ServerSettings,
    Settings,
    SettingsError,
    WorkerSettings,
)
from settings.parse import parse_bool, parse_duration

__all__ = [
    "AuthSettings",
    "DatabaseSettings",
    "EgressSettings",
    "ExecutionLimits",
    "KafkaSettings",
    "ObservabilitySettings",
    "RedisSettings",
    "SchedulerSettings",
    "SecretsSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "WorkerSettings",
    "parse_bool",
    "parse_duration",
]
