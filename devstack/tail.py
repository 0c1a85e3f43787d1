"""``python -m devstack.tail --topic api-responses``: print Orchid's Kafka messages as they arrive.

One line per message: topic, partition and offset, the key (``{tenant_id}:{execution_id}``),
the headers (tenant_id, integration, plan_key, execution_id, ...), then the JSON document,
shortened unless ``--full``. Split messages (part_index/part_count) are reassembled first.

    .venv/bin/python -m devstack.tail --bootstrap 127.0.0.1:59092 --topic api-responses
    .venv/bin/python -m devstack.tail --topic execution-events --from-beginning --max-messages 5

No consumer group: nothing is committed, so it never disturbs another reader. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from engine.kafka_codec import PART_COUNT, PART_INDEX, PART_MESSAGE_ID, Reassembler

__all__ = ["format_message", "main", "tail"]

_PART_HEADERS = frozenset({PART_COUNT, PART_INDEX, PART_MESSAGE_ID})


def _default_bootstrap() -> str:
    port = os.environ.get("ORCHID_DEV_KAFKA_PORT", "").strip() or "59092"
    return f"127.0.0.1:{port}"


def format_message(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    value: bytes,
    *,
    width: int | None = 400,
) -> str:
    """``topic[partition]@offset key=...  name=value ...`` and the value on the next line."""
    shown = " ".join(
        f"{name}={data.decode('utf-8', errors='replace')}"
        for name, data in headers
        if name not in _PART_HEADERS and data
    )
    body = value.decode("utf-8", errors="replace")
    if width is not None and len(body) > width:
        body = f"{body[:width]}… ({len(value)} bytes)"
    key_text = (key or b"").decode("utf-8", errors="replace")
    return f"{topic}[{partition}]@{offset} key={key_text}  {shown}\n  {body}"


async def tail(
    bootstrap: str,
    topics: Sequence[str],
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    timeout_s: float | None = None,
    width: int | None = 400,
    out: TextIO = sys.stdout,
) -> int:
    """Print messages until ``max_messages`` were printed, ``timeout_s`` passed or Ctrl-C;
    returns how many were printed."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        request_timeout_ms=10_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    reassembler = Reassembler()
    printed = 0
    async with asyncio.timeout(timeout_s):
        await consumer.start()
    try:
        while not stop.is_set() and (max_messages is None or printed < max_messages):
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            batches = await consumer.getmany(timeout_ms=int(wait * 1000))
            for records in batches.values():
                for record in records:
                    headers = [(name, bytes(data)) for name, data in record.headers]
                    whole = reassembler.feed(headers, record.value or b"")
                    if whole is None or (max_messages is not None and printed >= max_messages):
                        continue
                    line = format_message(
                        record.topic, record.partition, record.offset, record.key, headers, whole, width=width
                    )
                    print(line, file=out, flush=True)
                    printed += 1
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return printed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.tail", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--bootstrap", default=_default_bootstrap(), help="Kafka bootstrap servers")
    parser.add_argument("--topic", action="append", help="topic to read (repeatable; default api-responses)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--full", action="store_true", help="print whole documents")
    args = parser.parse_args(argv)
    topics = args.topic or ["api-responses"]
    try:
        printed = asyncio.run(
            tail(
                args.bootstrap,
                topics,
                from_beginning=args.from_beginning,
                max_messages=args.max_messages,
                timeout_s=args.timeout,
                width=None if args.full else 400,
            )
        )
    except (TimeoutError, OSError, KafkaError) as exc:
        print(
            f"devstack.tail: cannot read {', '.join(topics)} from {args.bootstrap}: {exc!r}", file=sys.stderr
        )
        return 1
    if args.max_messages is not None and printed < args.max_messages:
        print(f"devstack.tail: {printed} of {args.max_messages} messages before the timeout", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
