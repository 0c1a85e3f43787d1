"""Structured JSON logs and OpenTelemetry for the worker and the scheduler processes.

Every log record, the libraries' included, carries tenant_id and execution_id (contextvars set
by the code working on a job) and trace_id / span_id (the current span). Only the entry points
(``python -m worker``, ``python -m scheduler``) call configure_logging / setup_tracing.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from settings.model import ObservabilitySettings
from telemetry.export import otlp_exporter
from telemetry.logs import JsonFormatter, span_ids
from telemetry.logs import log_config as _log_config

__all__ = [
    "JobContextFilter",
    "JsonFormatter",
    "configure_logging",
    "current_traceparent",
    "execution_id_var",
    "job_log_context",
    "parent_context",
    "setup_tracing",
    "tenant_id_var",
]

tenant_id_var: ContextVar[str | None] = ContextVar("orchid_job_tenant_id", default=None)
execution_id_var: ContextVar[str | None] = ContextVar("orchid_job_execution_id", default=None)

_PROPAGATOR = TraceContextTextMapPropagator()
_PRETTY = "%(asctime)s %(levelname)-7s %(name)s [exec=%(execution_id)s trace=%(trace_id)s] %(message)s"
# aiokafka logs every reconnect attempt at ERROR while a broker is down.
_QUIET = {"aiokafka": "CRITICAL"}


class JobContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tenant_id = tenant_id_var.get()
        record.execution_id = execution_id_var.get()
        record.trace_id, record.span_id = span_ids()
        return True


def log_config(settings: ObservabilitySettings) -> dict[str, Any]:
    quiet = {} if settings.log_level.lower() in {"debug", "trace"} else _QUIET
    return _log_config(settings, context_filter=JobContextFilter, pretty_format=_PRETTY, loggers=quiet)


def configure_logging(settings: ObservabilitySettings) -> None:
    logging.config.dictConfig(log_config(settings))


@contextlib.contextmanager
def job_log_context(tenant_id: str, execution_id: str) -> Iterator[None]:
    tenant_token = tenant_id_var.set(tenant_id)
    execution_token = execution_id_var.set(execution_id)
    try:
        yield
    finally:
        execution_id_var.reset(execution_token)
        tenant_id_var.reset(tenant_token)


def setup_tracing(settings: ObservabilitySettings, *, service_name: str) -> TracerProvider:
    """Install a tracer provider (exporting over OTLP when enabled); shutdown() it on exit."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if settings.otlp_enabled:
        provider.add_span_processor(BatchSpanProcessor(otlp_exporter(settings)))
    trace.set_tracer_provider(provider)
    return provider


def parent_context(traceparent: str, tracestate: str = "") -> otel_context.Context:
    """The OTel context a job continues (its enqueuer's span), or an empty one."""
    carrier = {"traceparent": traceparent} if traceparent else {}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def current_traceparent() -> tuple[str, str]:
    """(traceparent, tracestate) of the current span, "" when there is none."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")
