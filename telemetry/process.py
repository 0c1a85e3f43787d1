"""The shared entry point of the background processes (``python -m worker`` / ``python -m scheduler``):
settings read once, logging and tracing set up, metrics served, signals turned into a stop event."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from prometheus_client import start_http_server

from settings.model import Settings, SettingsError

__all__ = ["run_process"]

Run = Callable[[Settings, asyncio.Event], Awaitable[None]]


async def _main(name: str, settings: Settings, run: Run, metrics_port: int) -> None:
    # Imported here: worker.observability is the worker/scheduler side of telemetry.
    from worker.observability import setup_tracing

    log = logging.getLogger(name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    provider = setup_tracing(
        settings.observability, service_name=f"{settings.observability.service_name}-{name}"
    )
    if metrics_port > 0:
        server, _thread = start_http_server(metrics_port, addr="127.0.0.1")
        log.info("%s metrics on port %d", name, server.server_port)
    try:
        await run(settings, stop)
    finally:
        provider.shutdown()


def run_process(name: str, run: Run, metrics_port: Callable[[Settings], int]) -> int:
    """Run ``run(settings, stop)`` on uvloop until SIGTERM/SIGINT sets ``stop``; exit code 2 when a
    setting is invalid (the message names the variable)."""
    from worker.observability import configure_logging

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.observability)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(name, settings, run, metrics_port(settings)))
    else:
        uvloop.run(_main(name, settings, run, metrics_port(settings)))
    return 0
