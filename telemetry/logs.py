"""Structured JSON logs, configured once by each process's entry point.

Each process supplies the filter that copies its own context (tenant, execution, span) onto
records; the formatter and the dictConfig shape are the same everywhere, so every process's log
lines read alike."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from settings.model import ObservabilitySettings

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "configure_logging", "log_config", "span_ids"]

LEVELS = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "fatal": "CRITICAL",
    "critical": "CRITICAL",
}
CONTEXT_FIELDS = ("tenant_id", "execution_id", "trace_id", "span_id")
# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def span_ids() -> tuple[str | None, str | None]:
    """The current span's trace and span ids in hex, or (None, None) outside a span."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return None, None
    return format(span.trace_id, "032x"), format(span.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; context fields only when set."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in CONTEXT_FIELDS and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(
    settings: ObservabilitySettings,
    *,
    context_filter: type[logging.Filter],
    pretty_format: str,
    loggers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The dictConfig: one stderr handler whose filter stamps the context on every record, the
    libraries' included. ``loggers`` sets levels of noisy library loggers by name."""
    level = LEVELS.get(settings.log_level.lower(), "INFO")
    formatter: dict[str, Any] = {"format": pretty_format} if settings.pretty_logs else {"()": JsonFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": context_filter}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: {"level": value} for name, value in (loggers or {}).items()},
    }


def configure_logging(settings: ObservabilitySettings, **kwargs: Any) -> None:
    logging.config.dictConfig(log_config(settings, **kwargs))
