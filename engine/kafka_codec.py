"""The Kafka wire format of Orchid's messages (pure): JSON documents, key, headers, and the
split of an oversized message into numbered parts and its reassembly.

Every message has key ``{tenant_id}:{execution_id}`` (one execution stays on one partition, in
order) and the headers ``tenant_id``, ``integration``, ``plan_key``, ``execution_id``,
``traceparent``, ``tracestate``; api-responses / api-errors messages also carry ``sequence``.

Oversized messages. A JSON document larger than the broker accepts (``max_message_bytes``,
checked on the uncompressed size, which is what brokers without compression-aware limits and
aiokafka's own ``max_request_size`` check) is sent as N consecutive records whose values are
byte slices of the document. Each part carries the normal headers plus ``message_id`` (the same
random id on every part of one message), ``part_index`` (0..N-1) and ``part_count`` (N), and the
same ``sequence``. A consumer reassembles by collecting the parts of a ``message_id`` (they share
the key, hence the partition, and arrive in order), concatenating the values by ``part_index``
once all ``part_count`` are there, and parsing the result as JSON; ``Reassembler`` does exactly
that. A record without ``part_count`` is a whole message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.ports import ExecutionEvent, ExecutionMeta, ExecutionStats, ResponseMessage

__all__ = [
    "PART_COUNT",
    "PART_INDEX",
    "PART_MESSAGE_ID",
    "KafkaRecord",
    "Reassembler",
    "encode_json",
    "event_document",
    "message_headers",
    "message_key",
    "record_framing",
    "response_document",
    "split_record",
]

PART_MESSAGE_ID = "message_id"
PART_INDEX = "part_index"
PART_COUNT = "part_count"
SEQUENCE = "sequence"
# Room left in each part for the record's key, headers and framing (~70 bytes + varints).
_RECORD_OVERHEAD = 512

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    key: bytes
    value: bytes
    headers: Headers


def message_key(meta: ExecutionMeta) -> bytes:
    return f"{meta.tenant_id}:{meta.execution_id}".encode()


def message_headers(meta: ExecutionMeta, *, sequence: int | None = None) -> Headers:
    headers = [
        ("tenant_id", meta.tenant_id),
        ("integration", meta.integration),
        ("plan_key", meta.plan_key),
        ("execution_id", meta.execution_id),
        ("traceparent", meta.traceparent),
        ("tracestate", meta.tracestate),
    ]
    if sequence is not None:
        headers.append((SEQUENCE, str(sequence)))
    return tuple((name, value.encode()) for name, value in headers)


def _trace_ids(traceparent: str) -> tuple[str, str]:
    """(trace_id, span_id) from a W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>", else empty."""
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return parts[1], parts[2]
    return "", ""


def response_document(meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> dict[str, Any]:
    """The api-responses / api-errors JSON object, fields in the spec's order; ``error`` only on
    api-errors."""
    trace_id, span_id = message.trace_id, message.span_id
    if not trace_id:
        trace_id, parent_span = _trace_ids(meta.traceparent)
        span_id = span_id or parent_span
    document: dict[str, Any] = {
        "tenant_id": meta.tenant_id,
        "integration": meta.integration,
        "plan_key": meta.plan_key,
        "config_id": meta.config_id,
        "execution_id": meta.execution_id,
        "step_path": message.step_path,
        "timestamp": message.timestamp,
        "trace_id": trace_id,
        "span_id": span_id,
        "request_url": message.request_url,
        "request_method": message.request_method,
        "request_headers": message.request_headers,
        "status_code": message.status_code,
        "response_body": message.response_body,
        "response_headers": message.response_headers,
        "response_size": message.response_size,
        # Whole milliseconds, as in the spec's example (consumers may read it as an integer).
        "duration_ms": round(message.duration_ms),
        "extracted_data": message.extracted_data,
        "sequence": message.sequence,
    }
    if error:
        document["error"] = message.error or ""
    return document


def _stats_document(stats: ExecutionStats) -> dict[str, Any]:
    return {
        "records": stats.records,
        "requests": stats.requests,
        "bytes": stats.bytes,
        "messages": stats.messages,
        "duration_ms": round(stats.duration_ms),
        "rate_limited_seconds": stats.rate_limited_seconds,
        "total_entities": sum(stats.entity_counts.values()),
        "entity_types": dict(stats.entity_counts),
    }


def event_document(meta: ExecutionMeta, event: ExecutionEvent) -> dict[str, Any]:
    """An execution.started / execution.completed event. ``event_type`` repeats ``type`` for
    consumers that read that name."""
    return {
        "type": event.type,
        "event_type": event.type,
        "tenant_id": meta.tenant_id,
        "integration": meta.integration,
        "plan_key": meta.plan_key,
        "config_id": meta.config_id,
        "execution_id": meta.execution_id,
        "status": event.status,
        "stats": None if event.stats is None else _stats_document(event.stats),
        "timestamp": event.timestamp,
        "error": event.error,
    }


def _json_default(value: object) -> object:
    """orjson serializes dict natively; other mappings (proxies, multidicts) and sets go through here."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(document: Mapping[str, Any]) -> bytes:
    return orjson.dumps(document, default=_json_default)


def record_framing(key: bytes, headers: Headers) -> int:
    """Bytes a record takes beyond its value: key, headers and room for the record's framing."""
    return len(key) + sum(len(name) + len(data) for name, data in headers) + _RECORD_OVERHEAD


def split_record(
    key: bytes,
    value: bytes,
    headers: Headers,
    *,
    max_message_bytes: int,
    new_message_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    framing: int | None = None,
) -> list[KafkaRecord]:
    """One record if it fits in ``max_message_bytes`` (uncompressed), else numbered parts.
    ``framing`` is ``record_framing(key, headers)`` when the caller has it already."""
    if framing is None:
        framing = record_framing(key, headers)
    if len(value) + framing <= max_message_bytes:
        return [KafkaRecord(key, value, headers)]
    message_id = new_message_id()
    part_headers_size = len(PART_MESSAGE_ID) + len(message_id) + len(PART_INDEX) + len(PART_COUNT) + 20
    room = max_message_bytes - framing - part_headers_size
    if room <= 0:
        raise ValueError(f"max_message_bytes={max_message_bytes} leaves no room for a message part")
    count = -(-len(value) // room)
    view = memoryview(value)
    return [
        KafkaRecord(
            key,
            bytes(view[index * room : (index + 1) * room]),
            (
                *headers,
                (PART_MESSAGE_ID, message_id.encode()),
                (PART_INDEX, str(index).encode()),
                (PART_COUNT, str(count).encode()),
            ),
        )
        for index in range(count)
    ]


@dataclass
class _Pending:
    count: int
    parts: dict[int, bytes] = field(default_factory=dict)


@dataclass
class Reassembler:
    """Consumer side of ``split_record``: feed records in partition order, get whole values back."""

    pending: dict[str, _Pending] = field(default_factory=dict)

    def feed(self, headers: Sequence[tuple[str, bytes]], value: bytes) -> bytes | None:
        """The complete value if this record completes a message (or is whole), else None."""
        found = {name: data for name, data in headers if name in (PART_MESSAGE_ID, PART_INDEX, PART_COUNT)}
        if PART_COUNT not in found:
            return value
        message_id = found[PART_MESSAGE_ID].decode()
        count = int(found[PART_COUNT])
        entry = self.pending.setdefault(message_id, _Pending(count))
        entry.parts[int(found[PART_INDEX])] = value
        if len(entry.parts) < entry.count:
            return None
        del self.pending[message_id]
        return b"".join(entry.parts[index] for index in range(entry.count))
