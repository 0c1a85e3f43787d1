"""KafkaSink.for_execution(): pipelined emission with a per-execution window, over a fake producer
whose acknowledgements the test controls (the real broker is covered in test_kafka_sink.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from engine.errors import EmitError
from engine.kafka_sink import ExecutionSink, KafkaSink
from engine.ports import ExecutionEvent, ExecutionMeta, ResponseMessage
from mockapi.kafka_reader import KafkaReader
from settings.model import KafkaSettings

META_A = ExecutionMeta("tenant-1", "acme", "plan", "config-1", "exec-a")
META_B = dataclasses.replace(META_A, execution_id="exec-b")
SETTINGS = KafkaSettings(brokers=("fake:9092",), enable_idempotence=False, request_timeout_ms=2000)


def message(sequence: int) -> ResponseMessage:
    return ResponseMessage(
        step_path="0", timestamp="2024-01-15T10:30:00Z", request_url="https://api.example.com/x",
        request_method="GET", request_headers={}, status_code=200, response_body={"n": sequence},
        response_headers={}, response_size=10, duration_ms=1.0, extracted_data={}, sequence=sequence,
    )  # fmt: skip


class _Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}


class _Client:
    cluster = _Cluster()


class FakeProducer:
    """send() enqueues and returns a future the test resolves with ``ack`` / ``fail``."""

    def __init__(self) -> None:
        self.client = _Client()
        self.sent: list[tuple[str, bytes, bytes, asyncio.Future[Any]]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, value, future))
        return future

    def of(self, execution_id: str) -> list[asyncio.Future[Any]]:
        return [f for _, key, _, f in self.sent if key.endswith(execution_id.encode())]

    def ack(self, futures: list[asyncio.Future[Any]] | None = None) -> None:
        for future in futures if futures is not None else [f for *_, f in self.sent]:
            if not future.done():
                future.set_result(None)

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def sink(producer: FakeProducer) -> KafkaSink:
    return KafkaSink(producer, SETTINGS)  # type: ignore[arg-type]


async def test_emit_returns_before_the_ack_and_flush_waits_for_it(
    producer: FakeProducer, sink: KafkaSink
) -> None:
    view = sink.for_execution()
    for sequence in range(1, 11):
        await view.emit_response(META_A, message(sequence), error=False)
    assert len(producer.sent) == 10 and view.pending == 10
    flushing = asyncio.ensure_future(view.flush())
    await asyncio.sleep(0.01)
    assert not flushing.done()
    producer.ack()
    await asyncio.wait_for(flushing, 1)
    assert view.pending == 0


async def test_flush_raises_only_for_the_executions_own_failed_message(
    producer: FakeProducer, sink: KafkaSink
) -> None:
    view_a, view_b = sink.for_execution(), sink.for_execution()
    for sequence in (1, 2):
        await view_a.emit_response(META_A, message(sequence), error=False)
        await view_b.emit_response(META_B, message(sequence), error=False)
    a1, a2 = producer.of("exec-a")
    a1.set_exception(KafkaTimeoutError("batch expired"))
    producer.ack()
    with pytest.raises(EmitError, match="KafkaTimeoutError"):
        await view_a.flush()
    await view_b.flush()  # B's messages all went through: A's failure is not B's
    assert a2.done()


async def test_a_failed_delivery_makes_the_next_emit_fail_at_once(
    producer: FakeProducer, sink: KafkaSink
) -> None:
    view = sink.for_execution()
    await view.emit_response(META_A, message(1), error=False)
    producer.sent[0][3].set_exception(KafkaTimeoutError("batch expired"))
    await asyncio.sleep(0)
    with pytest.raises(EmitError):
        await view.emit_response(META_A, message(2), error=False)
    assert len(producer.sent) == 1


async def test_the_window_bounds_unacknowledged_messages(producer: FakeProducer, sink: KafkaSink) -> None:
    view = sink.for_execution(max_pending_messages=3)
    for sequence in (1, 2, 3):
        await view.emit_response(META_A, message(sequence), error=False)
    fourth = asyncio.ensure_future(view.emit_response(META_A, message(4), error=False))
    await asyncio.sleep(0.01)
    assert not fourth.done() and len(producer.sent) == 3
    producer.ack([producer.sent[0][3]])
    await asyncio.wait_for(fourth, 1)
    assert len(producer.sent) == 4 and view.pending == 3


async def test_the_window_bounds_unacknowledged_bytes(producer: FakeProducer, sink: KafkaSink) -> None:
    view = sink.for_execution(max_pending_bytes=600)
    await view.emit_response(META_A, message(1), error=False)
    assert 300 < len(producer.sent[0][2]) <= 600  # two do not fit
    second = asyncio.ensure_future(view.emit_response(META_A, message(2), error=False))
    await asyncio.sleep(0.01)
    assert not second.done()
    producer.ack()
    await asyncio.wait_for(second, 1)


async def test_flush_gives_up_after_the_budget(producer: FakeProducer) -> None:
    sink = KafkaSink(producer, dataclasses.replace(SETTINGS, request_timeout_ms=10))  # type: ignore[arg-type]
    view = sink.for_execution()
    await view.emit_response(META_A, message(1), error=False)
    sink._budget_s = 0.05
    with pytest.raises(EmitError, match="within"):
        await view.flush()


async def test_a_failed_event_is_logged_not_raised(
    producer: FakeProducer, sink: KafkaSink, caplog: pytest.LogCaptureFixture
) -> None:
    view = sink.for_execution()
    await view.emit_event(META_A, ExecutionEvent("execution.started", "2024-01-15T10:30:00Z"))
    producer.sent[0][3].set_exception(KafkaTimeoutError("batch expired"))
    with caplog.at_level(logging.WARNING, logger="engine.kafka_sink"):
        await view.flush()
    assert "could not publish an execution event" in caplog.text


async def test_view_messages_carry_the_same_key_and_headers_as_direct_ones(
    producer: FakeProducer, sink: KafkaSink
) -> None:
    view = sink.for_execution()
    assert isinstance(view, ExecutionSink) and view.for_execution() is view
    await view.emit_response(META_A, message(7), error=True)
    topic, key, value, _ = producer.sent[0]
    assert topic == SETTINGS.error_topic and key == b"tenant-1:exec-a"
    assert b'"sequence":7' in value and b'"error":""' in value


async def test_pipelined_view_delivers_everything_to_the_real_broker(kafka_settings: KafkaSettings) -> None:
    async with await KafkaSink.start(kafka_settings) as real:
        view = real.for_execution()
        for sequence in range(1, 201):
            await view.emit_response(META_A, message(sequence), error=False)
        await view.flush()
        assert view.pending == 0
    reader = KafkaReader(kafka_settings.bootstrap, [kafka_settings.response_topic])
    async with reader:
        await reader.take(200, timeout_s=15)
    assert [m.value["sequence"] for m in reader.messages] == list(range(1, 201))
