"""The OTLP span exporter every process uses when OTLP_ENABLED=true."""

from __future__ import annotations

import importlib
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter

from settings.model import ObservabilitySettings

__all__ = ["otlp_exporter"]


def otlp_exporter(settings: ObservabilitySettings) -> SpanExporter:
    """OTLP over gRPC (default) or HTTP (OTLP_PROTOCOL=http), to OTLP_ENDPOINT."""
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
