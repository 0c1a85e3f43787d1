"""The recorder against real Postgres and Kafka; the whole path from mock API headers through the
Redis limiter's observer; the alerts as the RateLimitService RPCs serve them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import grpc
import pytest
from orchid.v1 import rate_limits_pb2, rate_limits_pb2_grpc
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devstack.servers import KafkaBroker
from engine.http_caller import build_http_caller
from engine.limiter_redis import RedisRateLimiter
from engine.ports import HttpRequest, RateLimitRule, RateLimitSubject
from mockapi import MockApi, sequence
from mockapi import json as json_response
from mockapi.kafka_reader import KafkaReader
from monitoring.metrics import RateLimitMetrics
from monitoring.recorder import (
    AlertEvent,
    KafkaAlertPublisher,
    LimiterMonitor,
    Observation,
    RateLimitRecorder,
)
from server.app import create_server, default_interceptors
from server.rate_limit_service import RateLimitService
from settings.model import AuthSettings, EgressSettings, ExecutionLimits
from store.tables import RateLimitAlert, RateLimitState

pytestmark = pytest.mark.stack

CONFIG = str(uuid.uuid4())
ENDPOINT = "GET api.test/items/{item.id}"


def obs(remaining: int | None, at: float, *, limit: int | None = 100, source="headers") -> Observation:
    return Observation("t1", CONFIG, ENDPOINT, remaining, limit, at + 60, at, source)


class Collecting:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    async def publish(self, event: AlertEvent) -> None:
        self.events.append(event)


async def test_states_are_recorded_with_their_metrics(sessions: async_sessionmaker[AsyncSession]) -> None:
    recorder = RateLimitRecorder(sessions, min_interval_s=0)
    now = time.time()
    await recorder.record(obs(100, now - 60))
    await recorder.record(obs(40, now))
    async with sessions() as session:
        rows = list(await session.scalars(select(RateLimitState).order_by(RateLimitState.observed_at)))
    assert [r.remaining for r in rows] == [100, 40]
    latest = rows[-1]
    assert latest.consumption_rate_per_minute == pytest.approx(60.0)
    assert latest.recovery_eta_seconds == 0.0
    assert latest.exhaustion_projection_seconds == pytest.approx(40.0)
    assert latest.limit == 100 and latest.source == "headers"


async def test_throttles_writes_but_never_a_level_change(sessions: async_sessionmaker[AsyncSession]) -> None:
    recorder = RateLimitRecorder(sessions, min_interval_s=10)
    now = time.time()
    for i, remaining in enumerate([90, 80, 70, 15, 14, 13]):
        await recorder.record(obs(remaining, now + i * 0.1))
    async with sessions() as session:
        rows = list(
            await session.scalars(select(RateLimitState.remaining).order_by(RateLimitState.observed_at))
        )
    assert rows == [90, 15]


async def test_three_workers_publish_each_transition_once(
    sessions: async_sessionmaker[AsyncSession], producer, alerts_topic: str, kafka_broker: KafkaBroker
) -> None:
    publisher = KafkaAlertPublisher(producer, alerts_topic)
    recorders = [RateLimitRecorder(sessions, publisher, min_interval_s=0) for _ in range(3)]
    now = time.time()
    made: list[AlertEvent] = []
    for i, remaining in enumerate([80, 50, 19, 15, 9, 5, 9, 12, 100, 100]):
        batch = await asyncio.gather(*(r.record(obs(remaining, now + i)) for r in recorders))
        made += [event for events in batch for event in events]
    assert [(e.kind, e.alert.severity) for e in made] == [
        ("opened", "WARNING"),
        ("escalated", "CRITICAL"),
        ("resolved", "CRITICAL"),
    ]
    async with KafkaReader(kafka_broker.bootstrap, [alerts_topic]) as reader:
        await reader.until(lambda messages: len(messages) >= 3, timeout_s=15)
        await reader.poll(1.0)
        messages = reader.messages
    bodies = [json.loads(m.raw) for m in messages]
    assert [b["type"] for b in bodies] == [
        "rate_limit_alert.opened",
        "rate_limit_alert.escalated",
        "rate_limit_alert.resolved",
    ]
    assert len({b["alert_id"] for b in bodies}) == 1
    assert bodies[-1]["resolved_at"] is not None and bodies[0]["endpoint"] == ENDPOINT
    assert messages[0].key == f"t1:{CONFIG}:{ENDPOINT}" and messages[0].headers["tenant_id"] == "t1"


async def test_limiter_states_are_recorded_but_raise_no_alerts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    collecting = Collecting()
    recorder = RateLimitRecorder(sessions, collecting, min_interval_s=0)
    await recorder.record(obs(0, time.time(), source="limiter"))
    assert collecting.events == []
    async with sessions() as session:
        assert (await session.scalar(select(RateLimitState.source))) == "limiter"
        assert (await session.scalar(select(RateLimitAlert.id))) is None


async def test_metrics_gauges() -> None:
    registry = CollectorRegistry()
    metrics = RateLimitMetrics(registry)
    metrics.set_state("t1", "c1", ENDPOINT, "headers", 25, 0.75)
    metrics.add_wait("t1", 1.5)
    labels = {"tenant_id": "t1", "config_id": "c1", "endpoint": ENDPOINT, "source": "headers"}
    assert registry.get_sample_value("orchid_rate_limit_remaining", labels) == 25
    assert registry.get_sample_value("orchid_rate_limit_utilization", labels) == 0.75
    assert registry.get_sample_value("orchid_rate_limit_wait_seconds_total", {"tenant_id": "t1"}) == 1.5


async def test_api_headers_to_alerts_visible_through_the_rpcs(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """X-RateLimit-Remaining drops under 20%, under 10%, then recovers: WARNING, CRITICAL,
    resolved, each published once, and served by RateLimitService."""
    collecting = Collecting()
    registry = CollectorRegistry()
    metrics = RateLimitMetrics(registry)
    monitor = LimiterMonitor(
        RateLimitRecorder(sessions, collecting, metrics=metrics, min_interval_s=30), metrics
    )
    monitor.start()
    limiter = RedisRateLimiter(redis, observer=monitor)
    subject = RateLimitSubject("t1", CONFIG, "p1", ENDPOINT)
    remaining = [90, 60, 30, 19, 18, 15, 9, 7, 5, 50, 95]
    reset = str(int(time.time()) + 3600)
    responses = [
        json_response(
            {"ok": True},
            headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": str(r), "X-RateLimit-Reset": reset},
        )
        for r in remaining
    ]
    async with MockApi() as api:
        api.route("GET", "/items", sequence(*responses))
        async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.1",))) as http:
            for _ in remaining:
                await limiter.acquire([RateLimitRule(1000, 60)], subject, max_wait_s=1)
                response = await http.send(HttpRequest("GET", api.url + "/items"))
                await limiter.observe(subject, response.status_code, response.headers)
    await monitor.aclose()
    assert [(e.kind, e.alert.severity) for e in collecting.events] == [
        ("opened", "WARNING"),
        ("escalated", "CRITICAL"),
        ("resolved", "CRITICAL"),
    ]
    labels = {"tenant_id": "t1", "config_id": CONFIG, "endpoint": ENDPOINT, "source": "headers"}
    assert registry.get_sample_value("orchid_rate_limit_remaining", labels) == 95
    async with sessions() as session:
        sources = set(await session.scalars(select(RateLimitState.source)))
    assert sources == {"headers", "limiter"}

    server, port = create_server(
        (rate_limits_pb2_grpc.add_RateLimitServiceServicer_to_server, RateLimitService(sessions)),
        listen="127.0.0.1:0",
        interceptors=default_interceptors(AuthSettings()),
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rate_limits_pb2_grpc.RateLimitServiceStub(channel)
            metadata = (("x-orchid-tenant-id", "t1"),)
            alerts = await stub.ListRateLimitAlerts(
                rate_limits_pb2.ListRateLimitAlertsRequest(), metadata=metadata
            )
            states = await stub.ListRateLimitStates(
                rate_limits_pb2.ListRateLimitStatesRequest(), metadata=metadata
            )
            other = await stub.ListRateLimitAlerts(
                rate_limits_pb2.ListRateLimitAlertsRequest(), metadata=(("x-orchid-tenant-id", "t2"),)
            )
    finally:
        await server.stop(None)
    assert len(alerts.alerts) == 1
    alert = alerts.alerts[0]
    assert alert.severity == rate_limits_pb2.RATE_LIMIT_ALERT_SEVERITY_CRITICAL and alert.HasField(
        "resolved_at"
    )
    assert alert.endpoint == ENDPOINT and alert.config_id == CONFIG
    by_endpoint = {s.endpoint: s for s in states.states}
    assert by_endpoint[ENDPOINT].remaining == 95 and by_endpoint[ENDPOINT].limit == 100
    assert "" in by_endpoint  # the limiter's per-config budget
    assert list(other.alerts) == []
