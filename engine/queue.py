"""The job queue's wire format: every Redis key, stream and group name, and the job envelope.

Shared by the server (TriggerPlan, CancelExecution, DLQ retry), the scheduler and the worker, so
producer and consumer can never disagree on a name or a field. Pure: no Redis client here, only
names, the codec and the Lua sources the three processes run.

One stream entry is one delivery of one execution. Its fields (all strings)::

    v             "1"                 envelope format version
    type          "plan_execution"
    job_id        execution id (UUID)  the job id *is* the execution id
    tenant_id
    plan_key
    config_id     UUID or ""
    attempt       "1", "2", ...        the retry attempt this delivery runs (1 = first try)
    trigger       schedule | manual | retry | replay
    replay_of     execution id or ""   set on a DLQ retry: the execution it replays
    traceparent   W3C trace context of the span that enqueued it ("" if none)
    tracestate
    enqueued_at   RFC 3339 UTC, milliseconds

Enqueueing is idempotent per (execution, attempt): the Lua script sets a dedupe key with NX and
adds the entry only if the key was new, in one atomic step (so both survive or vanish together
in the AOF). A sweep may therefore re-enqueue any execution it suspects never reached Redis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

if TYPE_CHECKING:  # the codec stays importable without a Redis client; only the helpers take one
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

__all__ = [
    "DEDUPE_TTL_S",
    "ENQUEUE_SCRIPT",
    "ENVELOPE_VERSION",
    "JOB_TYPE",
    "PROMOTE_SCRIPT",
    "Envelope",
    "InvalidEnvelopeError",
    "QueueNames",
    "decode_envelope",
    "delayed_member",
    "encode_envelope",
    "enqueue_args",
    "format_timestamp",
    "promote_due",
    "publish_cancel",
    "push_delayed",
    "push_job",
    "queue_push",
]

ENVELOPE_VERSION = "1"
JOB_TYPE = "plan_execution"
DEFAULT_STREAM = "orchid:jobs"
DEFAULT_GROUP = "orchid-workers"
# How long a dedupe key outlives its enqueue: longer than any backlog a job can sit in.
DEDUPE_TTL_S = 7 * 24 * 3600
# How long a cancel request stays visible to workers.
CANCEL_TTL_S = 24 * 3600

Trigger = Literal["schedule", "manual", "retry", "replay"]
_TRIGGERS: frozenset[str] = frozenset({"schedule", "manual", "retry", "replay"})


class InvalidEnvelopeError(ValueError):
    """A stream entry is not a job envelope this version understands."""


@dataclass(frozen=True, slots=True)
class QueueNames:
    """Every Redis name the queue uses, derived from the stream and group in settings."""

    stream: str = DEFAULT_STREAM
    group: str = DEFAULT_GROUP

    @property
    def delayed(self) -> str:
        """ZSET of retries waiting for their backoff; score = due time in epoch milliseconds."""
        return f"{self.stream}:delayed"

    @property
    def dedupe_prefix(self) -> str:
        return f"{self.stream}:enq:"

    def dedupe_key(self, execution_id: str, attempt: int) -> str:
        return f"{self.dedupe_prefix}{execution_id}:{attempt}"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel carrying ``tenant_id:execution_id`` of each cancel request."""
        return f"{self.stream}:cancel"

    def cancel_key(self, tenant_id: str, execution_id: str) -> str:
        """Set while a cancel request is outstanding; workers poll it each second."""
        return f"{self.stream}:cancel:{tenant_id}:{execution_id}"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One job: run execution ``job_id`` (attempt ``attempt``)."""

    job_id: str
    tenant_id: str
    plan_key: str
    config_id: str = ""
    attempt: int = 1
    trigger: Trigger = "schedule"
    replay_of: str = ""
    traceparent: str = ""
    tracestate: str = ""
    enqueued_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def execution_id(self) -> str:
        return self.job_id

    def next_attempt(self, *, now: datetime) -> Envelope:
        """The envelope of the retry that follows this attempt."""
        return Envelope(
            job_id=self.job_id,
            tenant_id=self.tenant_id,
            plan_key=self.plan_key,
            config_id=self.config_id,
            attempt=self.attempt + 1,
            trigger=self.trigger,
            replay_of=self.replay_of,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
            enqueued_at=now,
        )


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_envelope(envelope: Envelope) -> dict[str, str]:
    """The stream entry's fields, in a stable order."""
    return {
        "v": ENVELOPE_VERSION,
        "type": JOB_TYPE,
        "job_id": envelope.job_id,
        "tenant_id": envelope.tenant_id,
        "plan_key": envelope.plan_key,
        "config_id": envelope.config_id,
        "attempt": str(envelope.attempt),
        "trigger": envelope.trigger,
        "replay_of": envelope.replay_of,
        "traceparent": envelope.traceparent,
        "tracestate": envelope.tracestate,
        "enqueued_at": format_timestamp(envelope.enqueued_at),
    }


def _text(fields: Mapping[Any, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        value = fields.get(name.encode())
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_envelope(fields: Mapping[Any, Any]) -> Envelope:
    """Parse a stream entry; raises InvalidEnvelopeError naming what is wrong."""
    version = _text(fields, "v")
    if version != ENVELOPE_VERSION:
        raise InvalidEnvelopeError(f"unsupported envelope version {version!r}")
    kind = _text(fields, "type")
    if kind != JOB_TYPE:
        raise InvalidEnvelopeError(f"unsupported job type {kind!r}")
    job_id = _text(fields, "job_id")
    tenant_id = _text(fields, "tenant_id")
    plan_key = _text(fields, "plan_key")
    if not (job_id and tenant_id and plan_key):
        raise InvalidEnvelopeError("job_id, tenant_id and plan_key are required")
    try:
        UUID(job_id)
        attempt = int(_text(fields, "attempt") or "1")
        enqueued_at = datetime.fromisoformat(_text(fields, "enqueued_at").replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidEnvelopeError(f"malformed envelope: {exc}") from exc
    if attempt < 1:
        raise InvalidEnvelopeError(f"attempt must be >= 1, got {attempt}")
    trigger = _text(fields, "trigger") or "schedule"
    if trigger not in _TRIGGERS:
        raise InvalidEnvelopeError(f"unknown trigger {trigger!r}")
    return Envelope(
        job_id=job_id,
        tenant_id=tenant_id,
        plan_key=plan_key,
        config_id=_text(fields, "config_id"),
        attempt=attempt,
        trigger=trigger,  # type: ignore[arg-type]  # checked against _TRIGGERS above
        replay_of=_text(fields, "replay_of"),
        traceparent=_text(fields, "traceparent"),
        tracestate=_text(fields, "tracestate"),
        enqueued_at=enqueued_at if enqueued_at.tzinfo else enqueued_at.replace(tzinfo=UTC),
    )


# --- Lua: idempotent enqueue and the promotion of due retries ---------------------------------

# KEYS[1] stream, KEYS[2] dedupe key; ARGV[1] dedupe TTL (s), ARGV[2..] field/value pairs.
# Returns the new entry id, or false when this (execution, attempt) was enqueued before.
ENQUEUE_SCRIPT = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
end
return false
"""

# KEYS[1] delayed ZSET, KEYS[2] stream; ARGV[1] now (epoch ms), ARGV[2] max to move,
# ARGV[3] dedupe TTL (s). Each member is JSON {"k": dedupe key, "f": [field, value, ...]}.
# Moves every due member to the stream (at most once per dedupe key) and returns how many moved.
PROMOTE_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, member in ipairs(due) do
  local job = cjson.decode(member)
  if redis.call('SET', job['k'], '1', 'NX', 'EX', ARGV[3]) then
    redis.call('XADD', KEYS[2], '*', unpack(job['f']))
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
return moved
"""


def enqueue_args(names: QueueNames, envelope: Envelope) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for ENQUEUE_SCRIPT."""
    flat: list[str] = [str(DEDUPE_TTL_S)]
    for name, value in encode_envelope(envelope).items():
        flat.extend((name, value))
    return [names.stream, names.dedupe_key(envelope.job_id, envelope.attempt)], flat


def delayed_member(names: QueueNames, envelope: Envelope) -> str:
    """The ZSET member that PROMOTE_SCRIPT turns into a stream entry once due."""
    flat: list[str] = []
    for name, value in encode_envelope(envelope).items():
        flat.extend((name, value))
    member = {"k": names.dedupe_key(envelope.job_id, envelope.attempt), "f": flat}
    return json.dumps(member, separators=(",", ":"))


# --- The few Redis calls every producer makes (the client is passed in) -----------------------


async def push_job(redis: Redis, names: QueueNames, envelope: Envelope) -> bytes | None:
    """Add the job to the stream unless this (execution, attempt) was added before. Returns the
    new entry id, or None for a duplicate."""
    keys, args = enqueue_args(names, envelope)
    entry_id: bytes | None = await redis.register_script(ENQUEUE_SCRIPT)(keys=keys, args=args)
    return entry_id


def queue_push(pipe: Pipeline, names: QueueNames, envelope: Envelope) -> None:
    """push_job on a pipeline (for enqueueing thousands at once); its result is the entry id or
    None. EVAL rather than EVALSHA, so a freshly restarted Redis needs no SCRIPT LOAD."""
    keys, args = enqueue_args(names, envelope)
    pipe.eval(ENQUEUE_SCRIPT, len(keys), *keys, *args)


async def push_delayed(redis: Redis, names: QueueNames, envelope: Envelope, *, due_at: datetime) -> None:
    """Park a retry until ``due_at``; promote_due moves it to the stream then."""
    score = int(due_at.timestamp() * 1000)
    await redis.zadd(names.delayed, {delayed_member(names, envelope): score})


async def promote_due(redis: Redis, names: QueueNames, *, now: datetime, limit: int = 500) -> int:
    """Move retries whose backoff has passed to the stream; safe to run from many processes."""
    script = redis.register_script(PROMOTE_SCRIPT)
    moved = await script(
        keys=[names.delayed, names.stream], args=[int(now.timestamp() * 1000), limit, DEDUPE_TTL_S]
    )
    return int(moved or 0)


async def publish_cancel(redis: Redis, names: QueueNames, tenant_id: str, execution_id: str) -> None:
    """Ask whichever worker runs the execution to stop it (the key is what workers poll; the
    message lets a listener react at once)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(names.cancel_key(tenant_id, execution_id), "1", ex=CANCEL_TTL_S)
        pipe.publish(names.cancel_channel, f"{tenant_id}:{execution_id}")
        await pipe.execute()
