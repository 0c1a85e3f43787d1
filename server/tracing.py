"""OpenTelemetry for the server: a tracer provider (exporting over OTLP when OTLP_ENABLED=true)
and the grpc.aio server interceptor that opens one span per RPC.

A provider is installed even when nothing is exported, so every RPC has a trace id that the
JSON logs carry (and Envoy's traceparent, when present, is continued).
"""

from __future__ import annotations

import importlib
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from settings.model import ObservabilitySettings

__all__ = ["setup_tracing", "tracing_interceptor"]


def setup_tracing(settings: ObservabilitySettings) -> TracerProvider:
    """Build the provider and install it as the global one; call provider.shutdown() on exit
    to flush spans still queued for export."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.otlp_enabled:
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    return provider


def tracing_interceptor(provider: TracerProvider | None = None) -> grpc.aio.ServerInterceptor:  # type: ignore[type-arg]
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[type-arg]
        tracer_provider=provider
    )  # type: ignore[no-untyped-call]
    return interceptor


def _exporter(settings: ObservabilitySettings) -> SpanExporter:
    endpoint = settings.otlp_endpoint
    if settings.otlp_protocol == "http":
        # Imported by name: the HTTP exporter is an optional install next to the gRPC one.
        module: Any = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        exporter: SpanExporter = module.OTLPSpanExporter(endpoint=endpoint)
        return exporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"))
