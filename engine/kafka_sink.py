"""The ResponseSink adapter: one aiokafka producer per worker process, one cheap view per execution.

Two ways to publish, with the same wire format (engine/kafka_codec.py):

- ``KafkaSink`` itself: ``emit_response`` / ``emit_event`` return only once the broker has
  acknowledged the message (acks="all"), so a send that cannot complete raises EmitError right
  there. Simple and safe for any caller, but a sequential pagination pays one broker round trip
  per page.
- ``KafkaSink.for_execution()`` -> ``ExecutionSink``: pipelined. ``emit_response`` hands the
  message to the producer and returns; the delivery futures are tracked in the view's own
  window, so ``flush()`` waits for THIS execution's messages only and raises EmitError if any of
  them failed (another execution's failure never lands here, and vice versa). The window is
  bounded (``MAX_PENDING_MESSAGES`` / ``MAX_PENDING_BYTES``): an emit waits for acks only when
  it is full. A failed delivery also makes the next ``emit_response`` raise, so the execution
  stops promptly. ``run_plan`` takes a view itself when given a sink that offers one and flushes
  it before it reports success, so at-least-once holds and an execution never succeeds with a
  message missing. Lifecycle events go through the window too, but a failed event is only
  logged, as before: it never fails the execution.

Concurrent emitters (fan-out sub-steps, other executions) share batches: aiokafka gathers what
arrives while the previous batch of a partition is in flight, and ``linger_ms`` on top.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4
from aiokafka.errors import KafkaError

from engine.errors import DependencyUnavailableError, EmitError
from engine.kafka_codec import (
    KafkaRecord,
    encode_json,
    event_document,
    message_headers,
    message_key,
    response_document,
    split_record,
)
from engine.ports import ExecutionEvent, ExecutionMeta, ResponseMessage
from settings.model import KafkaSettings

__all__ = ["DEFAULT_COMPRESSION", "KafkaSink", "build_kafka_sink"]

log = logging.getLogger(__name__)

# lz4 is the cheapest codec on CPU (measured ~15% more msg/s than gzip at 50 emitters), but
# aiokafka needs the cramjam package for it; gzip needs nothing. Consumers decode either.
DEFAULT_COMPRESSION = "lz4" if has_lz4() else "gzip"
# Bigger batches than aiokafka's 16 KB default compress better and cost fewer requests;
# a message part bigger than a batch still goes out alone in a batch of its own.
_BATCH_BYTES = 256 * 1024
# Documents above this are serialized off the event loop (orjson takes ~10 ms for 10 MB).
_ENCODE_IN_THREAD_BYTES = 512 * 1024


class KafkaSink:
    """ResponseSink over one started AIOKafkaProducer. Build with ``start()`` (or
    ``build_kafka_sink``) and close once with ``aclose()``, which flushes."""

    def __init__(self, producer: AIOKafkaProducer, settings: KafkaSettings) -> None:
        self._producer = producer
        self._settings = settings
        # aiokafka gives up on a batch after request_timeout_ms; the margin covers linger and
        # the metadata refresh a send may wait for, so the budget is always bounded.
        self._budget_s = settings.request_timeout_ms / 1000.0 + settings.linger_ms / 1000.0 + 1.0

    @classmethod
    async def start(
        cls, settings: KafkaSettings, *, compression_type: str | None = DEFAULT_COMPRESSION
    ) -> KafkaSink:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            client_id="orchid",
            acks="all",
            enable_idempotence=settings.enable_idempotence,
            linger_ms=settings.linger_ms,
            request_timeout_ms=settings.request_timeout_ms,
            compression_type=compression_type,
            max_batch_size=min(_BATCH_BYTES, settings.max_message_bytes),
            # Parts are cut to fit max_message_bytes, so aiokafka's own check never fires on them.
            max_request_size=settings.max_message_bytes,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise DependencyUnavailableError(
                f"kafka brokers {settings.bootstrap} unreachable: {exc}"
            ) from exc
        return cls(producer, settings)

    async def aclose(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> KafkaSink:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        topic = self._settings.error_topic if error else self._settings.response_topic
        document = response_document(meta, message, error=error)
        await self._emit(topic, meta, document, sequence=message.sequence)

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        await self._emit(self._settings.events_topic, meta, event_document(meta, event), sequence=None)

    async def flush(self) -> None:
        try:
            async with asyncio.timeout(self._budget_s):
                await self._producer.flush()
        except TimeoutError as exc:
            raise EmitError(
                f"kafka did not acknowledge pending messages within {self._budget_s:.0f}s"
            ) from exc

    async def _emit(
        self, topic: str, meta: ExecutionMeta, document: dict[str, object], *, sequence: int | None
    ) -> None:
        if _looks_large(document):
            value = await asyncio.to_thread(encode_json, document)
        else:
            value = encode_json(document)
        records = split_record(
            message_key(meta),
            value,
            message_headers(meta, sequence=sequence),
            max_message_bytes=self._settings.max_message_bytes,
        )
        if len(records) > 1:
            log.debug("message for %s seq %s split into %d parts", meta.execution_id, sequence, len(records))
        await self._deliver(topic, records)

    async def _deliver(self, topic: str, records: Sequence[KafkaRecord]) -> None:
        """Enqueue every record (parts in order, same key, so same partition), then wait for acks."""
        try:
            async with asyncio.timeout(self._budget_s):
                acks = [
                    await self._producer.send(
                        topic, record.value, key=record.key, headers=list(record.headers)
                    )
                    for record in records
                ]
                # wait(), not gather(): a timeout must not cancel aiokafka's own delivery futures.
                await asyncio.wait(acks)
            for ack in acks:
                ack.result()
        except TimeoutError as exc:
            raise EmitError(
                f"kafka did not acknowledge a message to {topic} within {self._budget_s:.0f}s"
            ) from exc
        except KafkaError as exc:
            raise EmitError(f"kafka refused a message to {topic}: {type(exc).__name__}: {exc}") from exc


def _looks_large(document: dict[str, object]) -> bool:
    """Whether serializing will take long, judged without serializing: by the response's size."""
    size = document.get("response_size")
    return isinstance(size, int) and size > _ENCODE_IN_THREAD_BYTES


@asynccontextmanager
async def build_kafka_sink(
    settings: KafkaSettings, *, compression_type: str | None = DEFAULT_COMPRESSION
) -> AsyncIterator[KafkaSink]:
    """The worker's one sink: ``async with build_kafka_sink(s.kafka) as sink``."""
    sink = await KafkaSink.start(settings, compression_type=compression_type)
    try:
        yield sink
    finally:
        await sink.aclose()
