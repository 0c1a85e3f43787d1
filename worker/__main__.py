"""``python -m worker``: consume orchid:jobs until SIGTERM/SIGINT, then drain.

Reads every setting once with Settings.from_env() (REDIS_*, DB_*/DATABASE_URL, KAFKA_*,
WORKER_CONCURRENCY, WORKER_SHUTDOWN_GRACE, WORKER_VISIBILITY_TIMEOUT, JOB_MAX_ATTEMPTS,
WORKER_METRICS_PORT, LOG_LEVEL, OTLP_*...).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from settings.model import Settings, SettingsError
from worker.app import run_worker
from worker.observability import configure_logging, setup_tracing

log = logging.getLogger("worker")


async def main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    provider = setup_tracing(
        settings.observability, service_name=f"{settings.observability.service_name}-worker"
    )
    if settings.worker.metrics_port > 0:
        server, _thread = start_http_server(settings.worker.metrics_port, addr="127.0.0.1")
        log.info("worker metrics on port %d", server.server_port)
    try:
        await run_worker(settings, stop)
    finally:
        provider.shutdown()


def cli() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.observability)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(settings))
    else:
        uvloop.run(main(settings))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
