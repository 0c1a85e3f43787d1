"""KafkaSink against the real broker (Tansu), read back by a real consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.process import free_port
from devstack.servers import KafkaBroker
from engine.errors import DependencyUnavailableError, EmitError
from engine.kafka_sink import KafkaSink, build_kafka_sink
from engine.ports import ExecutionEvent, ExecutionMeta, ExecutionStats, ResponseMessage
from mockapi.kafka_reader import KafkaReader
from settings.model import KafkaSettings

META = ExecutionMeta(
    tenant_id="tenant-123",
    integration="salesforce",
    plan_key="contacts-sync",
    config_id="config-789",
    execution_id="exec-456",
    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    tracestate="vendor=abc",
)
SPEC_FIELDS = [
    "tenant_id", "integration", "plan_key", "config_id", "execution_id", "step_path", "timestamp",
    "trace_id", "span_id", "request_url", "request_method", "request_headers", "status_code",
    "response_body", "response_headers", "response_size", "duration_ms", "extracted_data", "sequence",
]  # fmt: skip
SPEC_HEADERS = {
    "tenant_id": "tenant-123",
    "integration": "salesforce",
    "plan_key": "contacts-sync",
    "execution_id": "exec-456",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=abc",
}


def message(sequence: int = 1, body: object = None, error: str | None = None) -> ResponseMessage:
    return ResponseMessage(
        step_path="fetch_contacts.get_details",
        timestamp="2024-01-15T10:30:00Z",
        request_url="https://api.salesforce.com/contacts/00Q123",
        request_method="GET",
        request_headers={"Authorization": "[REDACTED]", "Content-Type": "application/json"},
        status_code=200,
        response_body={"id": "00Q123", "first_name": "John"} if body is None else body,
        response_headers={"content-type": "application/json", "x-ratelimit-remaining": "4999"},
        response_size=1024,
        duration_ms=250.0,
        extracted_data={"user_id": "00Q123"},
        sequence=sequence,
        trace_id="abc123",
        span_id="def456",
        error=error,
    )


@pytest.fixture
async def sink(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaSink]:
    async with build_kafka_sink(kafka_settings) as started:
        yield started


async def read(settings: KafkaSettings, topic: str, count: int) -> KafkaReader:
    reader = KafkaReader(settings.bootstrap, [topic])
    async with reader:
        await reader.take(count, timeout_s=15)
    return reader


async def test_response_message_has_exactly_the_spec_fields(
    sink: KafkaSink, kafka_settings: KafkaSettings
) -> None:
    await sink.emit_response(META, message(), error=False)
    value = (await read(kafka_settings, kafka_settings.response_topic, 1)).messages[0].value
    assert list(value) == SPEC_FIELDS
    assert value == {
        "tenant_id": "tenant-123",
        "integration": "salesforce",
        "plan_key": "contacts-sync",
        "config_id": "config-789",
        "execution_id": "exec-456",
        "step_path": "fetch_contacts.get_details",
        "timestamp": "2024-01-15T10:30:00Z",
        "trace_id": "abc123",
        "span_id": "def456",
        "request_url": "https://api.salesforce.com/contacts/00Q123",
        "request_method": "GET",
        "request_headers": {"Authorization": "[REDACTED]", "Content-Type": "application/json"},
        "status_code": 200,
        "response_body": {"id": "00Q123", "first_name": "John"},
        "response_headers": {"content-type": "application/json", "x-ratelimit-remaining": "4999"},
        "response_size": 1024,
        "duration_ms": 250,
        "extracted_data": {"user_id": "00Q123"},
        "sequence": 1,
    }


async def test_response_headers_are_the_spec_headers_plus_sequence(
    sink: KafkaSink, kafka_settings: KafkaSettings
) -> None:
    await sink.emit_response(META, message(sequence=3), error=False)
    received = (await read(kafka_settings, kafka_settings.response_topic, 1)).messages[0]
    assert received.headers == {**SPEC_HEADERS, "sequence": "3"}


async def test_message_key_is_tenant_and_execution(sink: KafkaSink, kafka_settings: KafkaSettings) -> None:
    await sink.emit_response(META, message(), error=False)
    received = (await read(kafka_settings, kafka_settings.response_topic, 1)).messages[0]
    assert received.key == "tenant-123:exec-456"


async def test_error_message_goes_to_api_errors_with_its_error(
    sink: KafkaSink, kafka_settings: KafkaSettings
) -> None:
    await sink.emit_response(META, message(error="status 404 is in ignore_on"), error=True)
    value = (await read(kafka_settings, kafka_settings.error_topic, 1)).messages[0].value
    assert list(value) == [*SPEC_FIELDS, "error"]
    assert value["error"] == "status 404 is in ignore_on"


async def test_execution_events_carry_type_status_and_stats(
    sink: KafkaSink, kafka_settings: KafkaSettings
) -> None:
    stats = ExecutionStats(requests=5, records=120, bytes=4096, messages=5, duration_ms=812.6,
                           entity_counts={"fetch_contacts": 100, "fetch_contacts.details": 20})  # fmt: skip
    await sink.emit_event(META, ExecutionEvent("execution.started", "2024-01-15T10:30:00Z"))
    await sink.emit_event(
        META, ExecutionEvent("execution.completed", "2024-01-15T10:35:00Z", "success", stats)
    )
    reader = await read(kafka_settings, kafka_settings.events_topic, 2)
    started, completed = (received.value for received in reader.messages)
    assert started["type"] == "execution.started" and started["stats"] is None
    assert completed == {
        "type": "execution.completed",
        "event_type": "execution.completed",
        "tenant_id": "tenant-123",
        "integration": "salesforce",
        "plan_key": "contacts-sync",
        "config_id": "config-789",
        "execution_id": "exec-456",
        "status": "success",
        "stats": {
            "records": 120,
            "requests": 5,
            "bytes": 4096,
            "messages": 5,
            "duration_ms": 813,
            "rate_limited_seconds": 0.0,
            "total_entities": 120,
            "entity_types": {"fetch_contacts": 100, "fetch_contacts.details": 20},
        },
        "timestamp": "2024-01-15T10:35:00Z",
        "error": None,
    }
    assert reader.messages[1].key == "tenant-123:exec-456"
    assert reader.messages[1].headers == SPEC_HEADERS


async def test_5mb_message_is_split_into_parts_and_reassembled(
    sink: KafkaSink, kafka_settings: KafkaSettings
) -> None:
    page = {"contacts": [{"id": index, "notes": f"{index:08d}" * 62} for index in range(10_000)]}
    await sink.emit_response(META, message(sequence=9, body=page), error=False)
    reader = await read(kafka_settings, kafka_settings.response_topic, 1)
    whole = reader.messages[0]
    assert whole.value["response_body"] == page
    assert len(whole.raw) > 5_000_000
    assert whole.parts == len(reader.records) == 6
    assert all(record.size <= kafka_settings.max_message_bytes for record in reader.records)
    assert {record.headers["sequence"] for record in reader.records} == {"9"}
    assert [record.headers["part_index"] for record in reader.records] == [str(i) for i in range(6)]


async def test_flush_returns_once_concurrent_emits_are_acknowledged(
    sink: KafkaSink, kafka_settings: KafkaSettings
) -> None:
    await asyncio.gather(*(sink.emit_response(META, message(sequence=n), error=False) for n in range(1, 51)))
    await sink.flush()
    reader = await read(kafka_settings, kafka_settings.response_topic, 50)
    assert sorted(received.value["sequence"] for received in reader.messages) == list(range(1, 51))


async def test_start_with_unreachable_broker_raises_dependency_unavailable() -> None:
    settings = KafkaSettings(brokers=(f"127.0.0.1:{free_port()}",), enable_idempotence=False)
    with pytest.raises(DependencyUnavailableError, match="unreachable"):
        await KafkaSink.start(settings)


@pytest.mark.slow
async def test_emit_raises_emit_error_when_the_broker_is_stopped(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    await asyncio.to_thread(broker.start)
    settings = KafkaSettings(brokers=(broker.bootstrap,), enable_idempotence=False, linger_ms=0,
                             request_timeout_ms=1500)  # fmt: skip
    try:
        sink = await KafkaSink.start(settings)
        await sink.emit_response(META, message(sequence=1), error=False)
        await asyncio.to_thread(broker.stop)
        started = time.monotonic()
        with pytest.raises(EmitError):
            await sink.emit_response(META, message(sequence=2), error=False)
        assert time.monotonic() - started < 5.0
        async with asyncio.timeout(10):
            await sink.aclose()
    finally:
        await asyncio.to_thread(broker.stop)
