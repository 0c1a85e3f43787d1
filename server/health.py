"""Readiness from dependency probes: grpc.health.v1 and OpsService.Health/Live answer from it.

A background task probes each dependency (Postgres: ``SELECT 1``; Redis, the job queue:
``PING``; each with a short timeout) every interval. The server is SERVING, for "" and for every
orchid.v1 service, only while every required probe passes; a failing required probe flips all
of them to NOT_SERVING, so Envoy or Kubernetes stop routing here until it recovers. Graceful
shutdown sets NOT_SERVING for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2
from orchid.v1 import ops_pb2, ops_pb2_grpc
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "CheckResult",
    "DependencyProbe",
    "HealthMonitor",
    "HealthReporter",
    "OpsServicer",
    "postgres_probe",
    "redis_probe",
]

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]  # returns when the dependency answers, raises otherwise


@dataclass(frozen=True, slots=True)
class DependencyProbe:
    name: str
    probe: Probe
    required: bool = True


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str = ""
    required: bool = True


def postgres_probe(engine: AsyncEngine) -> Probe:
    """``SELECT 1`` on ``engine``. Give it an engine of its own (pool_size=1) so a pool
    exhausted by traffic does not read as a database outage."""

    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return probe


def redis_probe(client: Redis) -> Probe:
    """``PING`` on ``client``. Give it a client of its own without retries, so an outage is
    reported within the monitor's timeout instead of after the queue client's backoff."""

    async def probe() -> None:
        if not await client.ping():
            raise ConnectionError("redis did not answer PING")

    return probe


class HealthReporter:
    """Owns the grpc.health.v1 servicer and the current readiness verdict."""

    def __init__(self, version: str = "") -> None:
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.version = version
        self._services: list[str] = [health.OVERALL_HEALTH]
        self._results: tuple[CheckResult, ...] = ()
        self._serving = False
        self._reported: bool | None = None  # the verdict the health servicer last published
        self._shutting_down = False

    def track(self, services: Iterable[str]) -> None:
        """Report ``services`` (create_server passes every registered one) like the server."""
        added = [name for name in services if name not in self._services]
        self._services.extend(added)
        if added:
            self._reported = None  # the next update() publishes every service, the new ones too

    @property
    def serving(self) -> bool:
        return self._serving and not self._shutting_down

    @property
    def results(self) -> tuple[CheckResult, ...]:
        return self._results

    async def update(self, results: Sequence[CheckResult]) -> None:
        self._results = tuple(results)
        serving = all(result.ok for result in results if result.required)
        self._serving = serving
        if serving == self._reported:
            return
        was_serving, self._reported = self._reported, serving
        if serving and was_serving is False:
            log.info("serving again: every required dependency answers")
        elif not serving:
            failed = ", ".join(f"{r.name} ({r.error})" for r in results if r.required and not r.ok)
            log.warning("not serving: %s", failed)
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in self._services:
            await self.servicer.set(service, status)

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING from now on, whatever the probes say: Envoy drains before we stop."""
        self._shutting_down = True
        await self.servicer.enter_graceful_shutdown()


class HealthMonitor:
    """Runs the probes every ``interval_s`` and feeds the results to the reporter."""

    def __init__(
        self,
        reporter: HealthReporter,
        probes: Sequence[DependencyProbe],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 1.0,
    ) -> None:
        self._reporter = reporter
        self._probes = tuple(probes)
        self._interval = interval_s
        self._timeout = timeout_s
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> tuple[CheckResult, ...]:
        results = tuple(await asyncio.gather(*(self._check(p) for p in self._probes)))
        await self._reporter.update(results)
        return results

    async def _check(self, dependency: DependencyProbe) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                await dependency.probe()
        except Exception as exc:  # any failure means "not answering"; the reason goes to the log
            error = (
                f"timed out after {self._timeout:g}s" if isinstance(exc, TimeoutError) else type(exc).__name__
            )
            return CheckResult(dependency.name, False, _ms_since(started), error, dependency.required)
        return CheckResult(dependency.name, True, _ms_since(started), "", dependency.required)

    async def start(self) -> None:
        """Probe once (so the first answer is already real), then keep probing in the background."""
        await self.check_once()
        self._task = asyncio.create_task(self._run(), name="health-monitor")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


_STATUS = {True: ops_pb2.SERVING_STATUS_SERVING, False: ops_pb2.SERVING_STATUS_NOT_SERVING}


class OpsServicer(ops_pb2_grpc.OpsServiceServicer):
    """GET /health, /healthz (readiness) and /live (liveness) through Envoy's transcoder."""

    def __init__(self, reporter: HealthReporter) -> None:
        self._reporter = reporter

    async def Health(
        self,
        request: ops_pb2.HealthRequest,
        context: grpc.aio.ServicerContext[ops_pb2.HealthRequest, ops_pb2.HealthResponse],
    ) -> ops_pb2.HealthResponse:
        if not self._reporter.serving:
            down = [r for r in self._reporter.results if r.required and not r.ok]
            reason = ", ".join(f"{r.name}: {r.error}" for r in down) or "shutting down"
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"not serving ({reason})")
        return ops_pb2.HealthResponse(
            status=ops_pb2.SERVING_STATUS_SERVING,
            version=self._reporter.version,
            checks=[
                ops_pb2.DependencyCheck(
                    name=r.name,
                    status=_STATUS[r.ok],
                    latency_ms=r.latency_ms,
                    error=r.error,
                    required=r.required,
                )
                for r in self._reporter.results
            ],
        )

    async def Live(
        self,
        request: ops_pb2.LiveRequest,
        context: grpc.aio.ServicerContext[ops_pb2.LiveRequest, ops_pb2.LiveResponse],
    ) -> ops_pb2.LiveResponse:
        return ops_pb2.LiveResponse(status=ops_pb2.SERVING_STATUS_SERVING)
