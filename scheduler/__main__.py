"""``python -m scheduler``: enqueue due (plan, config) pairs every SCHEDULER_POLL_INTERVAL until
SIGTERM/SIGINT. Several schedulers may run at once."""

from __future__ import annotations

import sys

from scheduler.app import run_scheduler
from telemetry.process import run_process

if __name__ == "__main__":
    sys.exit(run_process("scheduler", run_scheduler, lambda settings: settings.scheduler.metrics_port))
