"""The Kafka wire format, without a broker."""

from __future__ import annotations

import itertools

from engine.kafka_codec import Reassembler, message_headers, message_key, response_document, split_record
from engine.ports import ExecutionMeta, ResponseMessage

META = ExecutionMeta(
    "tenant-123", "salesforce", "contacts-sync", "config-789", "exec-456",
    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
)  # fmt: skip


def message(**changes: object) -> ResponseMessage:
    fields: dict[str, object] = {
        "step_path": "fetch_contacts",
        "timestamp": "2024-01-15T10:30:00Z",
        "request_url": "https://api.example.com/contacts",
        "request_method": "GET",
        "request_headers": {},
        "status_code": 200,
        "response_body": {"id": 1},
        "response_headers": {},
        "response_size": 9,
        "duration_ms": 250.4,
        "extracted_data": {},
        "sequence": 1,
    }
    fields.update(changes)
    return ResponseMessage(**fields)  # type: ignore[arg-type]


def test_small_message_is_one_record_without_part_headers() -> None:
    records = split_record(b"k", b"x" * 100, message_headers(META), max_message_bytes=10_000)
    assert len(records) == 1
    assert "part_count" not in dict(records[0].headers)


def test_big_message_parts_each_fit_the_limit_and_rejoin_in_order() -> None:
    value = bytes(itertools.islice(itertools.cycle(range(256)), 50_000))
    records = split_record(b"key", value, message_headers(META, sequence=7), max_message_bytes=10_000)
    assert len(records) == 6
    for index, record in enumerate(records):
        headers = dict(record.headers)
        size = len(record.key) + len(record.value) + sum(len(n) + len(v) for n, v in record.headers)
        assert size <= 10_000
        assert (headers["part_index"], headers["part_count"], headers["sequence"]) == (
            str(index).encode(),
            b"6",
            b"7",
        )
    assert len({dict(record.headers)["message_id"] for record in records}) == 1
    assert b"".join(record.value for record in records) == value


def test_reassembler_accepts_parts_out_of_order_and_repeated() -> None:
    value = b"0123456789" * 3000
    records = split_record(b"k", value, (), max_message_bytes=8_000)
    reassembler = Reassembler()
    outputs = [reassembler.feed(record.headers, record.value) for record in [*records[::-1], records[0]]]
    assert outputs[: len(records) - 1] == [None] * (len(records) - 1)
    assert outputs[len(records) - 1] == value


def test_reassembler_passes_whole_messages_through() -> None:
    assert Reassembler().feed([("tenant_id", b"t")], b"{}") == b"{}"


def test_key_is_tenant_and_execution() -> None:
    assert message_key(META) == b"tenant-123:exec-456"


def test_trace_ids_fall_back_to_the_traceparent() -> None:
    document = response_document(META, message(), error=False)
    assert (document["trace_id"], document["span_id"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )


def test_duration_is_whole_milliseconds() -> None:
    assert response_document(META, message(duration_ms=250.4), error=False)["duration_ms"] == 250
