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
from aiokafka.partitioner import DefaultPartitioner, murmur2

from engine.errors import DependencyUnavailableError, EmitError
from engine.kafka_codec import (
    SEQUENCE,
    Headers,
    KafkaRecord,
    encode_json,
    event_document,
    message_headers,
    message_key,
    record_framing,
    response_document,
    split_record,
)
from engine.ports import ExecutionEvent, ExecutionMeta, ResponseMessage
from settings.model import KafkaSettings

__all__ = [
    "DEFAULT_COMPRESSION",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_MESSAGES",
    "ExecutionSink",
    "KafkaSink",
    "build_kafka_sink",
]

log = logging.getLogger(__name__)

# lz4 is the cheapest codec on CPU (measured ~15% more msg/s than gzip at 50 emitters), but
# aiokafka needs the cramjam package for it; gzip needs nothing. Consumers decode either.
DEFAULT_COMPRESSION = "lz4" if has_lz4() else "gzip"
# Bigger batches than aiokafka's 16 KB default compress better and cost fewer requests;
# a message part bigger than a batch still goes out alone in a batch of its own.
_BATCH_BYTES = 256 * 1024
# Documents above this are serialized off the event loop (orjson takes ~10 ms for 10 MB).
_ENCODE_IN_THREAD_BYTES = 512 * 1024
# One execution's window of unacknowledged messages: an emit waits for acks only past these.
MAX_PENDING_MESSAGES = 1000
MAX_PENDING_BYTES = 32 * 1024 * 1024


class KafkaSink:
    """ResponseSink over one started AIOKafkaProducer. Build with ``start()`` (or
    ``build_kafka_sink``) and close once with ``aclose()``, which flushes. Executions should
    publish through ``for_execution()``: see the module docstring."""

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
            partitioner=KeyHashCache(),
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise DependencyUnavailableError(
                f"kafka brokers {settings.bootstrap} unreachable: {exc}"
            ) from exc
        return cls(producer, settings)

    @property
    def producer(self) -> AIOKafkaProducer:
        """The started producer, for the few messages that are not an execution's (alerts, auth
        events): send with ``send_and_wait``."""
        return self._producer

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    async def aclose(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> KafkaSink:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def for_execution(
        self,
        *,
        max_pending_messages: int = MAX_PENDING_MESSAGES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> ExecutionSink:
        """A pipelined ResponseSink for one execution, over this sink's producer."""
        return ExecutionSink(
            self, max_pending_messages=max_pending_messages, max_pending_bytes=max_pending_bytes
        )

    # --- ResponseSink, acknowledged message by message -----------------------------------------

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        topic = self._settings.error_topic if error else self._settings.response_topic
        records = await self._records(
            meta,
            response_document(meta, message, error=error),
            message_headers(meta, sequence=message.sequence),
        )
        await self._deliver(topic, records)

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        records = await self._records(meta, event_document(meta, event), message_headers(meta))
        await self._deliver(self._settings.events_topic, records)

    async def flush(self) -> None:
        try:
            async with asyncio.timeout(self._budget_s):
                await self._producer.flush()
        except TimeoutError as exc:
            raise EmitError(
                f"kafka did not acknowledge pending messages within {self._budget_s:.0f}s"
            ) from exc

    # --- shared by both ways of publishing -----------------------------------------------------

    async def _records(
        self,
        meta: ExecutionMeta,
        document: dict[str, Any],
        headers: Headers,
        key: bytes | None = None,
        framing: int | None = None,
    ) -> list[KafkaRecord]:
        if _looks_large(document):
            value = await asyncio.to_thread(encode_json, document)
        else:
            value = encode_json(document)
        records = split_record(
            message_key(meta) if key is None else key,
            value,
            headers,
            max_message_bytes=self._settings.max_message_bytes,
            framing=framing,
        )
        if len(records) > 1:
            log.debug("message for %s split into %d parts", meta.execution_id, len(records))
        return records

    async def _enqueue(self, topic: str, records: Sequence[KafkaRecord]) -> list[asyncio.Future[Any]]:
        """Hand every record to the producer (parts in order, same key, so same partition) and
        return their delivery futures. Waits only when aiokafka's batch for the partition is full
        or the topic's metadata is unknown."""
        producer = self._producer
        try:
            if producer.client.cluster.partitions_for_topic(topic) is not None:
                # The common case: send() waits at most for a full batch to drain, and aiokafka
                # bounds that wait by request_timeout_ms itself (KafkaTimeoutError).
                return [
                    await producer.send(topic, record.value, key=record.key, headers=list(record.headers))
                    for record in records
                ]
            async with asyncio.timeout(self._budget_s):  # a metadata fetch first: bound it here
                return [
                    await producer.send(topic, record.value, key=record.key, headers=list(record.headers))
                    for record in records
                ]
        except TimeoutError as exc:
            raise EmitError(f"kafka did not take a message to {topic} within {self._budget_s:.0f}s") from exc
        except KafkaError as exc:
            raise EmitError(f"kafka refused a message to {topic}: {type(exc).__name__}: {exc}") from exc

    async def _deliver(self, topic: str, records: Sequence[KafkaRecord]) -> None:
        """Enqueue, then wait for the acks."""
        acks = await self._enqueue(topic, records)
        try:
            async with asyncio.timeout(self._budget_s):
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


class ExecutionSink:
    """One execution's pipelined view of a KafkaSink (``KafkaSink.for_execution()``): its own
    window of unacknowledged messages, its own flush, its own failures. Cheap to create."""

    def __init__(self, sink: KafkaSink, *, max_pending_messages: int, max_pending_bytes: int) -> None:
        self._sink = sink
        self._max_messages = max(1, max_pending_messages)
        self._max_bytes = max(1, max_pending_bytes)
        # delivery future -> (bytes, topic, is an event)
        self._pending: dict[asyncio.Future[Any], tuple[int, str, bool]] = {}
        self._pending_bytes = 0
        self._failure: str | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (resume at <= n pending, future)
        self._meta: ExecutionMeta | None = None
        self._key = b""
        self._headers: Headers = ()
        self._framing_bytes = 0

    @property
    def pending(self) -> int:
        """Messages (parts) handed to the producer and not acknowledged yet."""
        return len(self._pending)

    def for_execution(self) -> ExecutionSink:
        return self

    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        self._raise_failure()
        settings = self._sink._settings
        topic = settings.error_topic if error else settings.response_topic
        key, headers = self._framing(meta)
        sequence = str(message.sequence).encode()
        records = await self._sink._records(
            meta, response_document(meta, message, error=error), (*headers, (SEQUENCE, sequence)), key,
            self._framing_bytes + len(SEQUENCE) + len(sequence),
        )  # fmt: skip
        await self._send(topic, records, event=False)

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None:
        key, headers = self._framing(meta)
        records = await self._sink._records(
            meta, event_document(meta, event), headers, key, self._framing_bytes
        )
        await self._send(self._sink._settings.events_topic, records, event=True)

    async def flush(self) -> None:
        """Return once every message this view emitted is acknowledged; EmitError if any failed."""
        if self._pending:
            await self._wait_for(0, "acknowledge this execution's pending messages")
        self._raise_failure()

    def _framing(self, meta: ExecutionMeta) -> tuple[bytes, Headers]:
        if meta != self._meta:
            self._meta, self._key, self._headers = meta, message_key(meta), message_headers(meta)
            self._framing_bytes = record_framing(self._key, self._headers)
        return self._key, self._headers

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise EmitError(self._failure)

    async def _send(self, topic: str, records: Sequence[KafkaRecord], *, event: bool) -> None:
        size = sum(len(record.value) for record in records)
        if len(self._pending) >= self._max_messages or self._pending_bytes + size > self._max_bytes:
            # room for this message: fewer messages than the bound, and (unless it is bigger than
            # the whole window by itself) room for its bytes
            await self._wait_for(self._max_messages - len(records), "make room in the window", size)
            self._raise_failure()
        for ack in await self._sink._enqueue(topic, records):
            self._pending[ack] = (size // len(records), topic, event)
            self._pending_bytes += size // len(records)
            ack.add_done_callback(self._settled)

    async def _wait_for(self, count: int, what: str, size: int = 0) -> None:
        """Wait until at most ``count`` messages (and room for ``size`` bytes) are pending."""
        budget = self._sink._budget_s
        try:
            async with asyncio.timeout(budget):
                while len(self._pending) > max(count, 0) or (
                    self._pending and self._pending_bytes + size > self._max_bytes
                ):
                    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._waiters.append((max(count, 0), waiter))
                    await waiter
        except TimeoutError as exc:
            raise EmitError(f"kafka did not {what} within {budget:.0f}s") from exc

    def _settled(self, ack: asyncio.Future[Any]) -> None:
        size, topic, event = self._pending.pop(ack)
        self._pending_bytes -= size
        problem: BaseException | None = (
            asyncio.CancelledError("delivery cancelled") if ack.cancelled() else ack.exception()
        )
        if problem is not None:
            text = f"kafka refused a message to {topic}: {type(problem).__name__}: {problem}"
            if event:
                log.warning("could not publish an execution event: %s", text)
            elif self._failure is None:
                self._failure = text
        if self._waiters:
            pending = len(self._pending)
            keep: list[tuple[int, asyncio.Future[None]]] = []
            for count, waiter in self._waiters:
                if waiter.done():
                    continue
                if pending <= count or problem is not None:
                    waiter.set_result(None)  # it re-checks its condition (and the failure)
                else:
                    keep.append((count, waiter))
            self._waiters = keep


class KeyHashCache:
    """aiokafka's DefaultPartitioner (murmur2 of the key, as the Java client) with the hashes of
    recent keys remembered: the pure-Python murmur2 cost ~10 us a message, and every message of
    an execution has the same key."""

    _MAX_KEYS = 4096

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._MAX_KEYS:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def _looks_large(document: dict[str, object]) -> bool:
    """Whether serializing will take long, judged without serializing: by the response's size."""
    size = document.get("response_size")
    return isinstance(size, int) and size > _ENCODE_IN_THREAD_BYTES


@asynccontextmanager
async def build_kafka_sink(
    settings: KafkaSettings, *, compression_type: str | None = DEFAULT_COMPRESSION
) -> AsyncIterator[KafkaSink]:
    """The worker's one sink: ``async with build_kafka_sink(s.kafka) as sink``; one
    ``sink.for_execution()`` per execution."""
    sink = await KafkaSink.start(settings, compression_type=compression_type)
    try:
        yield sink
    finally:
        await sink.aclose()
