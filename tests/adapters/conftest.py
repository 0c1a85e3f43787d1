"""Fixtures of the adapter tests: the mock API on 127.0.0.1, the HTTP caller, and Kafka settings
with topics of the test's own on the session's real broker (``kafka_broker``, tests/conftest.py).

``kafka_broker`` can be pointed at an already running broker with ORCHID_TEST_KAFKA_BOOTSTRAP
(see ``kafka_bootstrap``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from engine.http_caller import AiohttpCaller, build_http_caller
from mockapi import MockApi
from settings.model import ExecutionLimits, KafkaSettings

from .support import LOOPBACK_ALLOWED


@pytest.fixture
async def mock_api() -> AsyncIterator[MockApi]:
    async with MockApi() as api:
        yield api


@pytest.fixture
def limits() -> ExecutionLimits:
    return ExecutionLimits(http_connect_timeout_s=2.0, http_read_timeout_s=5.0)


@pytest.fixture
async def http(limits: ExecutionLimits) -> AsyncIterator[AiohttpCaller]:
    async with build_http_caller(limits, LOOPBACK_ALLOWED) as caller:
        yield caller


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """An existing broker from ORCHID_TEST_KAFKA_BOOTSTRAP, else the session's Tansu broker."""
    existing = os.environ.get("ORCHID_TEST_KAFKA_BOOTSTRAP")
    if existing:
        return existing
    broker = request.getfixturevalue("kafka_broker")
    return str(broker.bootstrap)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Topics unique to the test, so a reader from the beginning sees only this test's messages.
    Idempotence off: Tansu's memory engine rejects InitProducerId."""
    suffix = uuid.uuid4().hex[:10]
    return KafkaSettings(
        brokers=(kafka_bootstrap,),
        response_topic=f"api-responses-{suffix}",
        error_topic=f"api-errors-{suffix}",
        events_topic=f"execution-events-{suffix}",
        enable_idempotence=False,
        linger_ms=0,
        request_timeout_ms=10_000,
    )
