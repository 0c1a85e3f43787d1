"""The worker process: builds the adapters once, runs the consumer, drains on stop.

``run_worker(settings, stop)`` is what ``python -m worker`` runs; tests call it in-process too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.errors import DependencyUnavailableError
from engine.http_caller import build_http_caller
from engine.kafka_sink import KafkaSink
from engine.limiter_memory import MemoryRateLimiter
from engine.queue import QueueNames, promote_due
from monitoring.metrics import shared_metrics
from monitoring.recorder import KafkaAlertPublisher, LimiterMonitor, RateLimitRecorder
from settings.model import DatabaseSettings, KafkaSettings, RedisSettings, Settings
from store.crypto import SecretBox
from store.database import create_sessions
from worker import metrics
from worker.cancel import CancelWatcher
from worker.consumer import StreamConsumer
from worker.fleet import Fleet, KafkaEventPublisher
from worker.handler import Adapters, JobHandler

__all__ = ["connect_redis", "consumer_name", "create_worker_engine", "queue_names", "run_worker"]

log = logging.getLogger(__name__)


def consumer_name(settings: RedisSettings) -> str:
    """Unique per process: the configured name (or the host name), the pid and a random tag."""
    base = settings.consumer_name or socket.gethostname()
    return f"{base}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def create_worker_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The worker's engine: unlike the server's (store.database), every one of its
    DB_MAX_OPEN_CONNS connections stays pooled - a busy worker returns and takes connections
    all the time, and a pool of DB_MAX_IDLE_CONNS would close and reopen the rest on every job -
    and no pre-ping (three round trips per checkout): a dead connection fails its statement,
    is discarded, and the statement is retried on another (worker.dbretry)."""
    return create_async_engine(
        settings.dsn,
        pool_size=settings.max_open_conns,
        max_overflow=0,
        pool_pre_ping=False,
        connect_args={"command_timeout": settings.command_timeout_s},
    )


def queue_names(settings: RedisSettings) -> QueueNames:
    return QueueNames(stream=settings.job_queue, group=settings.consumer_group)


def connect_redis(settings: RedisSettings) -> Redis:
    """A client that reconnects by itself: each command is retried with backoff on connection
    errors (a restarting Redis), and the socket timeout stays above the 1 s blocking reads."""
    return Redis.from_url(
        settings.url,
        socket_timeout=max(settings.socket_timeout_s, 5.0),
        socket_connect_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


@contextlib.asynccontextmanager
async def _kafka_sink(settings: KafkaSettings, stop: asyncio.Event) -> AsyncIterator[KafkaSink | None]:
    """The producer, started once the broker answers (None if stopped before it did)."""
    backoff = 0.5
    while not stop.is_set():
        try:
            sink = await KafkaSink.start(settings)
            break
        except DependencyUnavailableError as exc:
            log.warning("kafka unavailable (%s); retrying in %.1fs", exc, backoff)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stop.wait()
            backoff = min(backoff * 2, 5.0)
    else:
        yield None
        return
    try:
        yield sink
    finally:
        await sink.aclose()


async def _observe_queue(redis: Redis, names: QueueNames, consumer: StreamConsumer) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(names.stream)
        pipe.xpending(names.stream, names.group)
        pipe.zcard(names.delayed)
        length, pending, delayed = await pipe.execute(raise_on_error=False)
    if isinstance(length, int):
        metrics.STREAM_LENGTH.set(length)
    if isinstance(pending, dict):
        metrics.QUEUE_PENDING.set(int(pending.get("pending", 0)))
    if isinstance(delayed, int):
        metrics.DELAYED.set(delayed)
    metrics.IN_FLIGHT.set(consumer.in_flight)


async def run_worker(settings: Settings, stop: asyncio.Event, *, name: str | None = None) -> None:
    """Consume jobs until ``stop`` is set, then drain within WORKER_SHUTDOWN_GRACE."""
    names = queue_names(settings.redis)
    worker_name = name or consumer_name(settings.redis)
    async with contextlib.AsyncExitStack() as stack:
        db = create_worker_engine(settings.database)
        stack.push_async_callback(db.dispose)
        redis = connect_redis(settings.redis)
        stack.push_async_callback(redis.aclose)
        http = await stack.enter_async_context(build_http_caller(settings.limits, settings.egress))
        sink = await stack.enter_async_context(_kafka_sink(settings.kafka, stop))
        if sink is None:
            return
        sessions = create_sessions(db)
        secrets = SecretBox.from_settings(settings.secrets)
        instrumented_http = metrics.InstrumentedHttpCaller(http)
        # Rate-limit monitoring: states, alerts on rate-limit-alerts, the per-endpoint gauges and
        # the seconds-waited counter (on the default registry the metrics port serves).
        rate_metrics = shared_metrics()
        monitor = LimiterMonitor(
            RateLimitRecorder(
                sessions,
                KafkaAlertPublisher(sink.producer, settings.kafka.rate_limit_alerts_topic),
                metrics=rate_metrics,
            ),
            rate_metrics,
        )
        monitor.start()
        stack.push_async_callback(monitor.aclose)
        fleet = Fleet(
            redis,
            db,
            sessions,
            secrets,
            instrumented_http,
            observer=monitor,
            events=KafkaEventPublisher(sink.producer, settings.kafka.events_topic),
        )
        adapters = Adapters(
            http=instrumented_http,
            limiter=MemoryRateLimiter(),
            sink=metrics.InstrumentedSink(sink),
            scopes=fleet.for_run,
        )
        cancels = CancelWatcher(redis, names)
        handler = JobHandler(
            sessions,
            redis,
            names,
            adapters,
            cancels,
            worker_name=worker_name,
            limits=settings.limits,
            max_attempts=settings.worker.max_attempts,
            secrets=secrets,
            engine=db,
        )

        async def maintenance() -> None:
            await promote_due(redis, names, now=datetime.now(UTC))
            await _observe_queue(redis, names, consumer)

        consumer = StreamConsumer(
            redis,
            names,
            handler,
            consumer=worker_name,
            concurrency=settings.worker.concurrency,
            visibility_timeout_s=settings.worker.visibility_timeout_s,
            on_tick=maintenance,
        )
        log.info("worker %s consuming %s as part of %s (concurrency %d)",
                 worker_name, names.stream, names.group, settings.worker.concurrency)  # fmt: skip
        watcher = asyncio.create_task(cancels.run(), name="cancel-watcher")
        run_task = asyncio.create_task(consumer.run(), name="consumer")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({run_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if run_task.done() and run_task.exception() is not None:
            log.error("consumer stopped unexpectedly", exc_info=run_task.exception())
        log.info("worker %s draining (grace %.0fs)", worker_name, settings.worker.shutdown_grace_s)
        await consumer.drain(run_task, settings.worker.shutdown_grace_s)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisError):
            await watcher
        log.info("worker %s stopped", worker_name)
