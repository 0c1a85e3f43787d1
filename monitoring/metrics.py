"""Prometheus metrics of rate limits: per-endpoint gauges and the seconds requests waited.

Labels are (tenant_id, config_id, endpoint, source): bounded by the configs and endpoints that
exist, not by items or requests. ``RateLimitMetrics()`` registers on the default registry once
per process (``shared_metrics()``); tests pass a fresh ``CollectorRegistry``.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["RateLimitMetrics", "shared_metrics"]

_LABELS = ("tenant_id", "config_id", "endpoint", "source")


class RateLimitMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.remaining = Gauge(
            "orchid_rate_limit_remaining",
            "Requests left in the current rate-limit window.",
            _LABELS,
            registry=registry,
        )
        self.utilization = Gauge(
            "orchid_rate_limit_utilization",
            "Fraction of the rate-limit window's capacity used (0..1).",
            _LABELS,
            registry=registry,
        )
        self.wait_seconds = Counter(
            "orchid_rate_limit_wait_seconds",
            "Seconds requests spent waiting for a rate-limit slot.",
            ("tenant_id",),
            registry=registry,
        )
        self.waits = Counter(
            "orchid_rate_limit_waits",
            "Requests that had to wait for a rate-limit slot.",
            ("tenant_id",),
            registry=registry,
        )

    def set_state(
        self,
        tenant_id: str,
        config_id: str,
        endpoint: str,
        source: str,
        remaining: int | None,
        utilization: float | None,
    ) -> None:
        labels = (tenant_id, config_id, endpoint, source)
        if remaining is not None:
            self.remaining.labels(*labels).set(remaining)
        if utilization is not None:
            self.utilization.labels(*labels).set(utilization)

    def add_wait(self, tenant_id: str, seconds: float) -> None:
        self.wait_seconds.labels(tenant_id).inc(max(0.0, seconds))
        self.waits.labels(tenant_id).inc()


_shared: RateLimitMetrics | None = None


def shared_metrics() -> RateLimitMetrics:
    """The process's metrics on the default registry (created on first use)."""
    global _shared
    if _shared is None:
        _shared = RateLimitMetrics()
    return _shared
