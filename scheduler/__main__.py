"""``python -m scheduler``: enqueue due (plan, config) pairs every SCHEDULER_POLL_INTERVAL until
SIGTERM/SIGINT. Several schedulers may run at once."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from scheduler.app import run_scheduler
from settings.model import Settings, SettingsError
from worker.observability import configure_logging, setup_tracing

log = logging.getLogger("scheduler")


async def main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    provider = setup_tracing(
        settings.observability, service_name=f"{settings.observability.service_name}-scheduler"
    )
    if settings.scheduler.metrics_port > 0:
        server, _thread = start_http_server(settings.scheduler.metrics_port, addr="127.0.0.1")
        log.info("scheduler metrics on port %d", server.server_port)
    try:
        await run_scheduler(settings, stop)
    finally:
        provider.shutdown()


def cli() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"scheduler: {exc}", file=sys.stderr)
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
