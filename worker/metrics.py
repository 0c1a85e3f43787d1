"""Prometheus metrics of the worker, served on WORKER_METRICS_PORT, and the instrumented
adapters that count HTTP requests and Kafka messages and open a span for each."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from engine.ports import (
    ExecutionEvent,
    ExecutionMeta,
    HttpCaller,
    HttpRequest,
    HttpResponse,
    ResponseMessage,
    ResponseSink,
)
from worker.observability import current_traceparent

__all__ = [
    "DEAD_LETTERED",
    "EXECUTION_SECONDS",
    "HTTP_REQUESTS",
    "JOBS_FAILED",
    "JOBS_RETRIED",
    "JOBS_STARTED",
    "JOBS_SUCCEEDED",
    "KAFKA_MESSAGES",
    "QUEUE_PENDING",
    "STREAM_LENGTH",
    "InstrumentedHttpCaller",
    "InstrumentedSink",
    "status_class",
]

JOBS_STARTED = Counter("orchid_worker_jobs_started", "Executions a worker started (each attempt).")
JOBS_SUCCEEDED = Counter("orchid_worker_jobs_succeeded", "Executions that ended in success.")
JOBS_FAILED = Counter(
    "orchid_worker_jobs_failed", "Attempts that ended other than success, by status.", ["status"]
)
JOBS_RETRIED = Counter("orchid_worker_jobs_retried", "Failed attempts scheduled for a retry.")
DEAD_LETTERED = Counter(
    "orchid_worker_jobs_dead_lettered", "Executions moved to the DLQ, by reason.", ["reason"]
)
EXECUTION_SECONDS = Histogram(
    "orchid_worker_execution_duration_seconds",
    "Run time of one attempt, by final status.",
    ["status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
HTTP_REQUESTS = Counter(
    "orchid_worker_http_requests",
    "Upstream HTTP requests, by status class and host.",
    ["status_class", "host"],
)
KAFKA_MESSAGES = Counter(
    "orchid_worker_kafka_messages_produced",
    "Messages handed to Kafka (acknowledged before a run succeeds), by kind.",
    ["kind"],
)
STREAM_LENGTH = Gauge("orchid_queue_stream_length", "Entries in the job stream (waiting + being worked on).")
QUEUE_PENDING = Gauge("orchid_queue_pending", "Entries delivered to a worker and not yet acknowledged.")
DELAYED = Gauge("orchid_queue_delayed", "Retries waiting for their backoff.")
IN_FLIGHT = Gauge("orchid_worker_jobs_in_flight", "Jobs this worker is running now.")

_tracer = trace.get_tracer("orchid.worker")


def status_class(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code < 600 else "other"


class InstrumentedHttpCaller:
    """HttpCaller that counts each request and runs it inside a client span."""

    def __init__(self, inner: HttpCaller) -> None:
        self._inner = inner

    async def send(self, request: HttpRequest) -> HttpResponse:
        host = urlsplit(request.url).hostname or "unknown"
        with _tracer.start_as_current_span(
            f"HTTP {request.method.upper()}",
            kind=trace.SpanKind.CLIENT,
            attributes={"http.request.method": request.method.upper(), "server.address": host},
        ) as span:
            try:
                response = await self._inner.send(request)
            except Exception:
                HTTP_REQUESTS.labels("error", host).inc()
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            HTTP_REQUESTS.labels(status_class(response.status_code), host).inc()
            return response


class InstrumentedSink:
    """ResponseSink that counts acknowledged messages and traces each produce; every message
    carries the traceparent of its own produce span."""

    def __init__(self, inner: ResponseSink) -> None:
        self._inner = inner

    def for_execution(self) -> InstrumentedSink:
        """The instrumented per-execution view of the inner sink (when it has one)."""
        view = getattr(self._inner, "for_execution", None)
        return InstrumentedSink(view()) if callable(view) else self

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        kind = "error" if error else "response"
        with _tracer.start_as_current_span(f"kafka produce {kind}", kind=trace.SpanKind.PRODUCER):
            await self._inner.emit_response(self._traced(meta), message, error=error)
        KAFKA_MESSAGES.labels(kind).inc()

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        with _tracer.start_as_current_span(f"kafka produce {event.type}", kind=trace.SpanKind.PRODUCER):
            await self._inner.emit_event(self._traced(meta), event)
        KAFKA_MESSAGES.labels("event").inc()

    async def flush(self) -> None:
        await self._inner.flush()

    @staticmethod
    def _traced(meta: ExecutionMeta) -> ExecutionMeta:
        traceparent, tracestate = current_traceparent()
        if not traceparent:
            return meta
        return dataclasses.replace(meta, traceparent=traceparent, tracestate=tracestate)
