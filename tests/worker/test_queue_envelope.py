"""The envelope codec and the idempotent enqueue / delayed-retry scripts (real Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from engine.queue import (
    Envelope,
    InvalidEnvelopeError,
    QueueNames,
    decode_envelope,
    encode_envelope,
    promote_due,
    push_delayed,
    push_job,
    queue_push,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _envelope(**changes: object) -> Envelope:
    base: dict[str, object] = {
        "job_id": str(uuid.uuid4()),
        "tenant_id": "t1",
        "plan_key": "contacts",
        "config_id": str(uuid.uuid4()),
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "enqueued_at": T0,
    }
    base.update(changes)
    return Envelope(**base)  # type: ignore[arg-type]


def test_round_trip_through_bytes() -> None:
    envelope = _envelope(attempt=3, trigger="replay", replay_of=str(uuid.uuid4()), tracestate="a=b")
    fields = {k.encode(): v.encode() for k, v in encode_envelope(envelope).items()}
    assert decode_envelope(fields) == envelope


def test_encoding_is_flat_strings() -> None:
    fields = encode_envelope(_envelope())
    assert fields["v"] == "1" and fields["type"] == "plan_execution"
    assert fields["enqueued_at"] == "2026-01-02T03:04:05.678Z"
    assert all(isinstance(v, str) for v in fields.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": "2"}, "version"),
        ({"type": "other"}, "job type"),
        ({"job_id": ""}, "required"),
        ({"job_id": "not-a-uuid"}, "malformed"),
        ({"attempt": "0"}, "attempt"),
        ({"attempt": "x"}, "malformed"),
        ({"trigger": "cron"}, "trigger"),
    ],
)
def test_bad_envelopes_are_rejected(change: dict[str, str], message: str) -> None:
    fields = encode_envelope(_envelope()) | change
    with pytest.raises(InvalidEnvelopeError, match=message):
        decode_envelope(fields)


def test_next_attempt_keeps_identity() -> None:
    envelope = _envelope()
    later = envelope.next_attempt(now=T0 + timedelta(seconds=5))
    assert (later.job_id, later.attempt, later.traceparent) == (envelope.job_id, 2, envelope.traceparent)


async def test_push_job_is_idempotent_per_attempt(redis: Redis) -> None:
    names = QueueNames(stream="test:jobs")
    envelope = _envelope()
    first = await push_job(redis, names, envelope)
    assert first is not None
    assert await push_job(redis, names, envelope) is None
    assert await push_job(redis, names, envelope.next_attempt(now=T0)) is not None
    assert await redis.xlen(names.stream) == 2


async def test_pipelined_push(redis: Redis) -> None:
    names = QueueNames(stream="test:jobs")
    envelopes = [_envelope() for _ in range(50)]
    async with redis.pipeline(transaction=False) as pipe:
        for envelope in [*envelopes, envelopes[0]]:
            queue_push(pipe, names, envelope)
        results = await pipe.execute()
    assert sum(1 for r in results if r is not None) == 50
    entries = await redis.xrange(names.stream)
    assert [decode_envelope(f).job_id for _, f in entries] == [e.job_id for e in envelopes]


async def test_delayed_retry_is_promoted_once_when_due(redis: Redis) -> None:
    names = QueueNames(stream="test:jobs")
    retry = _envelope(attempt=2)
    now = datetime.now(UTC)
    await push_delayed(redis, names, retry, due_at=now + timedelta(seconds=10))
    await push_delayed(redis, names, retry, due_at=now + timedelta(seconds=10))  # a duplicate
    assert await promote_due(redis, names, now=now) == 0
    assert await promote_due(redis, names, now=now + timedelta(seconds=11)) == 1
    assert await redis.zcard(names.delayed) == 0
    (entry,) = await redis.xrange(names.stream)
    assert decode_envelope(entry[1]) == retry
