"""Structured JSON logs for the server, configured once by ``python -m server``.

Every record, the libraries' included, carries tenant_id (the caller of the current RPC),
execution_id (set by code working on an execution) and trace_id/span_id (the current
OpenTelemetry span), from contextvars, through a filter on the handler.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from server.auth import current_tenant_id
from settings.model import ObservabilitySettings

__all__ = ["ContextFilter", "JsonFormatter", "configure_logging", "execution_id_var", "log_config"]

execution_id_var: ContextVar[str | None] = ContextVar("orchid_execution_id", default=None)

_LEVELS = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "fatal": "CRITICAL",
    "critical": "CRITICAL",
}
# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_PRETTY_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [tenant=%(tenant_id)s trace=%(trace_id)s] %(message)s"
_CONTEXT = ("tenant_id", "execution_id", "trace_id", "span_id")


class ContextFilter(logging.Filter):
    """Copy the request context onto the record (None where there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant_id = current_tenant_id()
        record.execution_id = execution_id_var.get()
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else None
        record.span_id = format(span.span_id, "016x") if span.is_valid else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; context fields only when set."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in _CONTEXT and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(settings: ObservabilitySettings) -> dict[str, Any]:
    level = _LEVELS.get(settings.log_level.lower(), "INFO")
    formatter: dict[str, Any] = {"format": _PRETTY_FORMAT} if settings.pretty_logs else {"()": JsonFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
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
    }


def configure_logging(settings: ObservabilitySettings) -> None:
    logging.config.dictConfig(log_config(settings))
