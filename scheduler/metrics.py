"""Prometheus metrics of the scheduler, served on SCHEDULER_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from worker.metrics import QUEUE_PENDING, STREAM_LENGTH

__all__ = ["JOBS_ENQUEUED", "QUEUE_PENDING", "STREAM_LENGTH", "SWEPT", "TICKS", "TICK_SECONDS"]

JOBS_ENQUEUED = Counter(
    "orchid_scheduler_jobs_enqueued", "Jobs the scheduler put on the stream, by trigger.", ["trigger"]
)
SWEPT = Counter(
    "orchid_scheduler_jobs_reenqueued",
    "Queued executions found without a confirmed job and enqueued again (or found already there).",
)
TICKS = Counter("orchid_scheduler_ticks", "Scheduling ticks, by result (ran, skipped, failed).", ["result"])
TICK_SECONDS = Histogram(
    "orchid_scheduler_tick_duration_seconds",
    "Time to decide and enqueue one tick.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
# The queue gauges are the worker's own (one definition per process registry).
