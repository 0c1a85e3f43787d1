"""``python -m server``: the Orchid gRPC server (behind Envoy), its metrics port and health.

TriggerPlan, CancelExecution and RetryDlqEntry reach the workers through the Redis job queue
(server/job_queue.py); readiness follows both PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

import uvloop
from orchid.v1 import ops_pb2_grpc
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from engine.queue import QueueNames
from server.app import create_server, default_interceptors
from server.health import (
    DependencyProbe,
    HealthMonitor,
    HealthReporter,
    OpsServicer,
    postgres_probe,
    redis_probe,
)
from server.job_queue import RedisJobQueue
from server.logging_setup import configure_logging
from server.metrics import start_metrics_server
from server.services import build_servicers
from server.tracing import setup_tracing, tracing_interceptor
from settings.model import RedisSettings, Settings

log = logging.getLogger("server")

VERSION = "0.1.0"

# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def database_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """Every one of DB_MAX_OPEN_CONNS connections stays pooled (as the worker's do): with only
    DB_MAX_IDLE_CONNS kept, each RPC beyond that many in flight would open a connection (TLS
    attempt, auth, codec setup) and close it again. LIFO keeps the busy few warm; the rest sit
    idle and are pinged before their next use."""
    db = settings.database
    size = db.max_open_conns if pool_size is None else pool_size
    engine = create_async_engine(
        db.dsn,
        pool_size=max(size, 1),
        max_overflow=0,
        pool_use_lifo=True,
        connect_args={"command_timeout": db.command_timeout_s, "timeout": 5},
    )
    ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine: AsyncEngine, *, idle_s: float = PING_AFTER_IDLE_S) -> None:
    """pool_pre_ping, but only for connections that sat idle: pool_pre_ping costs three round
    trips (BEGIN, a ping, ROLLBACK) on every checkout, more than a one-row read itself. A
    connection asyncpg already saw closed (a database restart) is replaced without a ping; one
    in steady use is handed out as is (if it broke meanwhile, the error invalidates the pool)."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["orchid_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("orchid_idle_since", None)
        if idle_since is None:  # a new connection
            return
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("connection closed while pooled")
        if time.monotonic() - idle_since >= idle_s:
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise DisconnectionError("pooled connection failed its ping") from exc


def redis_client(settings: RedisSettings, *, probe: bool = False) -> Redis:
    """The job queue's client (REDIS_SOCKET_TIMEOUT), or with ``probe`` the health probe's: a
    1 s timeout and no retries, so an outage shows within one probe."""
    if probe:
        return Redis.from_url(
            settings.url,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )
    return Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=min(settings.socket_timeout_s, 5.0),
        health_check_interval=30,
    )


async def serve(settings: Settings) -> None:
    async with contextlib.AsyncExitStack() as stack:
        provider = setup_tracing(settings.observability)
        stack.callback(provider.shutdown)
        if settings.server.run_migrations:
            from store.migrations import upgrade_head_async

            await upgrade_head_async(settings.database.dsn)
            log.info("database migrated to head")

        db = database_engine(settings)
        stack.push_async_callback(db.dispose)
        probe_db = database_engine(settings, pool_size=1)  # the probe never waits behind traffic
        stack.push_async_callback(probe_db.dispose)
        sessions = async_sessionmaker(db, expire_on_commit=False)
        redis = redis_client(settings.redis)
        stack.push_async_callback(redis.aclose)
        probe_redis = redis_client(settings.redis, probe=True)
        stack.push_async_callback(probe_redis.aclose)
        queue = RedisJobQueue(
            redis, QueueNames(stream=settings.redis.job_queue, group=settings.redis.consumer_group)
        )

        reporter = HealthReporter(version=VERSION)
        monitor = HealthMonitor(
            reporter,
            [
                DependencyProbe("database", postgres_probe(probe_db)),
                DependencyProbe("redis", redis_probe(probe_redis)),
            ],
        )
        server, port = create_server(
            *build_servicers(sessions, settings, queue=queue, redis=redis),
            (ops_pb2_grpc.add_OpsServiceServicer_to_server, OpsServicer(reporter)),
            listen=settings.server.grpc_listen,
            interceptors=default_interceptors(settings.auth, tracing=tracing_interceptor(provider)),
            health=reporter,
        )
        metrics = start_metrics_server(
            settings.server.metrics_port, addr=_host_of(settings.server.grpc_listen)
        )
        stack.callback(metrics.stop)
        await monitor.start()
        stack.push_async_callback(monitor.stop)
        await server.start()
        log.info("orchid server listening on port %d, metrics on port %d", port, metrics.port)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

        log.info("shutting down: draining for up to %.0fs", settings.server.shutdown_grace_s)
        await monitor.stop()
        await reporter.enter_graceful_shutdown()  # Envoy and probes see NOT_SERVING first
        await server.stop(settings.server.shutdown_grace_s)
    log.info("stopped")


def _host_of(listen: str) -> str:
    """The metrics port binds where gRPC does: loopback by default, all interfaces in a container."""
    host = listen.rpartition(":")[0].strip("[]")
    return host or "0.0.0.0"


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.observability)
    uvloop.run(serve(settings))  # grpc.aio and asyncpg both run on uvloop


if __name__ == "__main__":
    main()
