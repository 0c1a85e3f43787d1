"""Fleet-wide rate limiting and auth for the worker's runs.

``Fleet.for_run`` gives each execution its own ``RunScope``:
- a ``RedisRateLimiter`` over the process's Redis client, reading the config's rate-limit header
  names, reporting to the process-wide ``LimiterMonitor`` (states, alerts, gauges, the
  seconds-waited counter) and, when a request starts a wait of a second or more, showing the
  execution as RATE_LIMITED with its expected resume time (one UPDATE, plus an
  ``execution.rate_limited`` event on the events topic), and RUNNING again once that time passes;
- the run's AuthProvider: ``NoAuth`` without an auth flow; with one (the plan's, else the
  config's), an ``AuthManager`` built on first use from the flow's decrypted definition, which
  records every token acquisition as a child execution (kind auth) and publishes
  ``auth_flow.broken`` (no secrets) when the flow breaks.

The no-auth path costs nothing beyond the limiter's own script call per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.auth_flows import AuthFlowError
from engine.auth_manager import AuthFlowBrokenEvent, AuthManager, AuthRun
from engine.errors import OrchidError
from engine.kafka_codec import message_headers, message_key
from engine.limiter_redis import LimiterObserver, RedisRateLimiter
from engine.ports import AuthProvider, ExecutionMeta, HttpCaller, JsonValue, RateLimitSubject
from engine.ratelimit_headers import HeaderNames
from store import auth_flows_repo, jobs_repo
from store.auth_flow_state_repo import PostgresRefreshTokenStore
from store.crypto import SecretBox
from store.records import ErrorInfo, ExecutionRecord
from worker.dbretry import on_connection
from worker.handler import NoAuth

__all__ = ["EventPublisher", "Fleet", "FlowAuth", "RunScope", "WaitMarker"]

log = logging.getLogger(__name__)

# A new, later resume time is written only when it moves the shown one by at least this much.
_MARK_STEP_S = 1.0


class EventPublisher(Protocol):
    """Publishes a JSON document on the events topic (fire and forget)."""

    async def publish(
        self, key: bytes, document: Mapping[str, Any], headers: list[tuple[str, bytes]]
    ) -> None: ...


class KafkaEventPublisher:
    """Events through the worker's producer: handed to the producer, not waited for."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(
        self, key: bytes, document: Mapping[str, Any], headers: list[tuple[str, bytes]]
    ) -> None:
        try:
            ack = await self._producer.send(self._topic, orjson.dumps(document), key=key, headers=headers)
        except Exception:
            log.warning("event %s not published", document.get("type"), exc_info=True)
            return
        ack.add_done_callback(_log_failed_ack)


def _log_failed_ack(ack: asyncio.Future[Any]) -> None:
    if not ack.cancelled() and ack.exception() is not None:
        log.warning("event not acknowledged: %s", ack.exception())


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class WaitMarker:
    """Shows one execution as RATE_LIMITED while its requests wait (the limiter's ``on_wait``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        execution: ExecutionRecord,
        meta: ExecutionMeta,
        events: EventPublisher | None,
    ) -> None:
        self._engine = engine
        self._tenant = execution.tenant_id
        self._id = execution.id
        self._meta = meta
        self._events = events
        self._shown: datetime | None = None  # the resume time the row shows now
        self._lock = asyncio.Lock()
        self._restore: asyncio.Task[None] | None = None

    async def __call__(self, subject: RateLimitSubject, resume_at: float) -> None:
        moment = datetime.fromtimestamp(resume_at, UTC)
        shown = self._shown
        if shown is not None and (moment - shown).total_seconds() < _MARK_STEP_S:
            return  # already shown as waiting until about then
        async with self._lock:
            shown = self._shown
            if shown is not None and (moment - shown).total_seconds() < _MARK_STEP_S:
                return
            marked = await on_connection(
                self._engine,
                "mark rate limited",
                lambda conn: jobs_repo.mark_rate_limited(conn, self._tenant, self._id, resume_at=moment),
            )
            if not marked:
                return
            first = self._shown is None
            self._shown = moment
            if self._restore is None or self._restore.done():
                self._restore = asyncio.create_task(self._back_to_running(), name="rate-limit-restore")
        if first and self._events is not None:
            await self._publish(subject, moment)

    async def _publish(self, subject: RateLimitSubject, moment: datetime) -> None:
        assert self._events is not None
        meta = self._meta
        document = {
            "type": "execution.rate_limited",
            "event_type": "execution.rate_limited",
            "tenant_id": meta.tenant_id,
            "integration": meta.integration,
            "plan_key": meta.plan_key,
            "config_id": meta.config_id,
            "execution_id": meta.execution_id,
            "status": "rate_limited",
            "endpoint": subject.endpoint,
            "resume_at": _rfc3339(moment),
            "timestamp": _rfc3339(datetime.now(UTC)),
        }
        headers = [*message_headers(meta), ("type", b"execution.rate_limited")]
        await self._events.publish(message_key(meta), document, headers)

    async def _back_to_running(self) -> None:
        while self._shown is not None:
            shown = self._shown
            delay = (shown - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            async with self._lock:
                if self._shown != shown:
                    continue  # extended meanwhile
                await self._unmark(shown)
                self._shown = None

    async def _unmark(self, shown: datetime) -> None:
        try:
            await on_connection(
                self._engine,
                "mark running",
                lambda conn: jobs_repo.mark_running(conn, self._tenant, self._id, shown_resume_at=shown),
            )
        except Exception:
            log.warning("execution %s: could not mark it running again", self._id, exc_info=True)

    async def aclose(self) -> None:
        """The run ended: stop the timer and, if the row still shows a wait, show RUNNING again
        (the outcome is written next, by statements that expect a running execution)."""
        if self._restore is not None:
            self._restore.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restore
        shown, self._shown = self._shown, None
        if shown is not None:
            await self._unmark(shown)


class FlowAuth:
    """AuthProvider of a run whose plan or config names an auth flow: the flow is loaded (and its
    secrets decrypted) on first use, then an AuthManager does the work."""

    def __init__(
        self, fleet: Fleet, execution: ExecutionRecord, inputs: jobs_repo.RunInputs, flow_id: UUID
    ) -> None:
        self._fleet = fleet
        self._execution = execution
        self._inputs = inputs
        self._flow_id = flow_id
        self._manager: AuthManager | None = None
        self._lock = asyncio.Lock()

    async def values(self, *, refresh: bool = False) -> Mapping[str, JsonValue]:
        manager = self._manager if self._manager is not None else await self._load()
        return await manager.values(refresh=refresh)

    async def _load(self) -> AuthManager:
        async with self._lock:
            if self._manager is not None:
                return self._manager
            fleet, execution = self._fleet, self._execution
            try:
                async with fleet.sessions() as session:
                    flow = await auth_flows_repo.load_for_run(
                        session, execution.tenant_id, self._flow_id, secrets=fleet.secrets
                    )
            except OrchidError as exc:
                raise AuthFlowError(f"auth flow {self._flow_id} could not be loaded: {exc.message}") from exc
            self._manager = AuthManager(
                fleet.redis,
                http=fleet.http,
                tenant_id=execution.tenant_id,
                config_id=str(execution.config_id or ""),
                flow_id=str(self._flow_id),
                flow_type=flow.type,
                definition=flow.definition,
                config=self._inputs.config_values,
                status=flow.status,
                token_store=PostgresRefreshTokenStore(
                    fleet.sessions, fleet.secrets, tenant_id=execution.tenant_id, flow_id=self._flow_id
                ),
                on_run=self._record_run,
                on_broken=self._publish_broken,
            )
            return self._manager

    async def _record_run(self, run: AuthRun) -> None:
        execution, fleet = self._execution, self._fleet
        error = ErrorInfo(code="auth_failed", message=run.error) if run.error else None

        async def insert(conn: Any) -> UUID:
            return await jobs_repo.insert_auth_run(
                conn, execution.tenant_id, execution.id, plan_key=execution.plan_key,
                plan_id=self._inputs.plan_id, config_id=execution.config_id,
                integration=execution.integration, auth_flow_id=self._flow_id, status=run.status,
                error=error, started_at=run.started_at, finished_at=run.finished_at,
            )  # fmt: skip

        await on_connection(fleet.engine, "record auth run", insert)

    async def _publish_broken(self, event: AuthFlowBrokenEvent) -> None:
        if self._fleet.events is None:
            return
        key = f"{event.tenant_id}:{event.flow_id}".encode()
        headers = [("tenant_id", event.tenant_id.encode()), ("type", b"auth_flow.broken")]
        await self._fleet.events.publish(key, event.to_json(), headers)


class RunScope:
    """The limiter and auth provider of one execution; ``aclose()`` after the run."""

    def __init__(self, limiter: RedisRateLimiter, auth: AuthProvider, marker: WaitMarker) -> None:
        self.limiter = limiter
        self.auth = auth
        self._marker = marker

    async def aclose(self) -> None:
        await self._marker.aclose()


class Fleet:
    """What every run's scope is built from: one per worker process."""

    def __init__(
        self,
        redis: Redis,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        secrets: SecretBox,
        http: HttpCaller,
        *,
        observer: LimiterObserver | None = None,
        events: EventPublisher | None = None,
        report_wait_s: float = 1.0,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.sessions = sessions
        self.secrets = secrets
        self.http = http
        self.observer = observer
        self.events = events
        self._report_wait_s = report_wait_s
        self._headers: dict[str, HeaderNames] = {}

    def for_run(
        self, execution: ExecutionRecord, inputs: jobs_repo.RunInputs, meta: ExecutionMeta
    ) -> RunScope:
        marker = WaitMarker(self.engine, execution, meta, self.events)
        limiter = RedisRateLimiter(
            self.redis,
            headers=self._header_names(inputs.rate_limit_headers),
            observer=self.observer,
            on_wait=marker,
            report_wait_s=self._report_wait_s,
        )
        auth: AuthProvider = (
            NoAuth()
            if inputs.auth_flow_id is None
            else FlowAuth(self, execution, inputs, inputs.auth_flow_id)
        )
        return RunScope(limiter, auth, marker)

    def _header_names(self, value: Mapping[str, Any] | None) -> HeaderNames:
        if not value:
            return HeaderNames.from_config(None)
        key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        names = self._headers.get(key)
        if names is None:
            if len(self._headers) > 1024:
                self._headers.clear()
            names = self._headers[key] = HeaderNames.from_config(value)
        return names
