"""Read Orchid's Kafka messages back in tests: a real consumer that reassembles split messages.

    async with KafkaReader(bootstrap, [settings.response_topic]) as reader:
        messages = await reader.take(3, timeout_s=10)
        assert messages[0].value["plan_key"] == "contacts-sync"

Reads each topic from the beginning without a consumer group, so a test should use topics of
its own (``KafkaSettings(response_topic=f"api-responses-{uuid4().hex}")``) or filter with
``until``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from engine.kafka_codec import PART_COUNT, Reassembler

__all__ = ["KafkaMessage", "KafkaReader", "RawRecord"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as it sat on the broker (a whole message or one part of one)."""

    topic: str
    offset: int
    size: int  # bytes of key + value + headers, uncompressed
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class KafkaMessage:
    """One whole (reassembled) message."""

    topic: str
    partition: int
    offset: int  # of the last part
    key: str
    headers: dict[str, str]  # of the last part; the part headers stay in for inspection
    raw: bytes
    parts: int

    @property
    def value(self) -> Any:
        return orjson.loads(self.raw)


class KafkaReader:
    def __init__(self, bootstrap: str, topics: Sequence[str], *, from_beginning: bool = True) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._reassembler = Reassembler()
        self.messages: list[KafkaMessage] = []
        self.records: list[RawRecord] = []

    async def __aenter__(self) -> KafkaReader:
        await self._consumer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_s: float = 0.5) -> list[KafkaMessage]:
        """Fetch what is available now; returns (and keeps) the messages it completed."""
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        completed: list[KafkaMessage] = []
        for records in batches.values():
            for record in records:
                headers = [(name, bytes(data)) for name, data in record.headers]
                names = {name: data.decode("utf-8", errors="replace") for name, data in headers}
                size = len(record.key or b"") + len(record.value or b"")
                size += sum(len(name) + len(data) for name, data in headers)
                self.records.append(RawRecord(record.topic, record.offset, size, names))
                whole = self._reassembler.feed(headers, record.value or b"")
                if whole is None:
                    continue
                completed.append(
                    KafkaMessage(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        key=(record.key or b"").decode(),
                        headers=names,
                        raw=whole,
                        parts=int(names.get(PART_COUNT, "1")),
                    )
                )
        self.messages.extend(completed)
        return completed

    async def until(
        self, done: Callable[[list[KafkaMessage]], bool], *, timeout_s: float = 10.0
    ) -> list[KafkaMessage]:
        """Poll until ``done(all messages so far)`` holds; raises TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while not done(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"kafka: condition not met after {timeout_s}s; have {len(self.messages)} messages"
                )
            await self.poll(min(0.5, left))
        return self.messages

    async def take(self, count: int, *, timeout_s: float = 10.0) -> list[KafkaMessage]:
        """Wait for at least ``count`` whole messages and return the first ``count``."""
        await self.until(lambda messages: len(messages) >= count, timeout_s=timeout_s)
        return self.messages[:count]

    async def quiet(self, seconds: float = 1.0) -> list[KafkaMessage]:
        """Keep polling for ``seconds`` (to check nothing more arrives); returns all messages."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await self.poll(min(0.25, left))
            await asyncio.sleep(0)
        return self.messages
