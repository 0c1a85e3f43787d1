"""``python -m worker``: consume orchid:jobs until SIGTERM/SIGINT, then drain.

Reads every setting once with Settings.from_env() (REDIS_*, DB_*/DATABASE_URL, KAFKA_*,
WORKER_CONCURRENCY, WORKER_SHUTDOWN_GRACE, WORKER_VISIBILITY_TIMEOUT, JOB_MAX_ATTEMPTS,
WORKER_METRICS_PORT, LOG_LEVEL, OTLP_*...).
"""

from __future__ import annotations

import sys

from telemetry.process import run_process
from worker.app import run_worker

if __name__ == "__main__":
    sys.exit(run_process("worker", run_worker, lambda settings: settings.worker.metrics_port))
