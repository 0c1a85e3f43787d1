"""OpenTelemetry for the server: a tracer provider (exporting over OTLP when OTLP_ENABLED=true)
and the grpc.aio server interceptor that opens one span per RPC.

A provider is installed even when nothing is exported, so every RPC has a trace id that the
JSON logs carry (and Envoy's traceparent, when present, is continued). With nothing to export
it samples nothing: spans are then non-recording (ids only, no attributes or events kept),
which is all the logs need and a fraction of the cost per RPC.
"""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from settings.model import ObservabilitySettings
from telemetry.export import otlp_exporter

__all__ = ["setup_tracing", "tracing_interceptor"]


def setup_tracing(settings: ObservabilitySettings) -> TracerProvider:
    """Build the provider and install it as the global one; call provider.shutdown() on exit
    to flush spans still queued for export."""
    resource = Resource.create({"service.name": settings.service_name})
    if not settings.otlp_enabled:
        # Even a sampled parent (Envoy's traceparent) gets a non-recording child: nothing would
        # export it. Its trace id is the parent's, so the logs still join the trace.
        return _install(TracerProvider(resource=resource, sampler=ALWAYS_OFF))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER, by default parent-based
    provider.add_span_processor(BatchSpanProcessor(otlp_exporter(settings)))
    return _install(provider)


def _install(provider: TracerProvider) -> TracerProvider:
    trace.set_tracer_provider(provider)
    return provider


def tracing_interceptor(provider: TracerProvider | None = None) -> grpc.aio.ServerInterceptor:  # type: ignore[type-arg]
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[type-arg]
        tracer_provider=provider
    )  # type: ignore[no-untyped-call]
    return interceptor
