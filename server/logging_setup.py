"""Structured JSON logs for the server, configured once by ``python -m server``.

Every record, the libraries' included, carries tenant_id (the caller of the current RPC),
execution_id (set by code working on an execution) and trace_id/span_id (the current
OpenTelemetry span), from contextvars, through a filter on the handler.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from server.auth import current_tenant_id
from settings.model import ObservabilitySettings
from telemetry.logs import JsonFormatter, span_ids
from telemetry.logs import configure_logging as _configure
from telemetry.logs import log_config as _log_config

__all__ = ["ContextFilter", "JsonFormatter", "configure_logging", "execution_id_var", "log_config"]

execution_id_var: ContextVar[str | None] = ContextVar("orchid_execution_id", default=None)

_PRETTY_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [tenant=%(tenant_id)s trace=%(trace_id)s] %(message)s"


class ContextFilter(logging.Filter):
    """Copy the request context onto the record (None where there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant_id = current_tenant_id()
        record.execution_id = execution_id_var.get()
        record.trace_id, record.span_id = span_ids()
        return True


def log_config(settings: ObservabilitySettings) -> dict[str, object]:
    return _log_config(settings, context_filter=ContextFilter, pretty_format=_PRETTY_FORMAT)


def configure_logging(settings: ObservabilitySettings) -> None:
    _configure(settings, context_filter=ContextFilter, pretty_format=_PRETTY_FORMAT)
