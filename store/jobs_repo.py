"""The worker's queries that executions_repo / statistics_repo do not cover: loading everything
one run needs, fencing a finished attempt, and putting a failed execution back in the queue.

Lifecycle writes use executions_repo (start_attempt, finish), statistics_repo (record_run,
put_context) and dlq_repo (add); these functions sit in the same transactions as those.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.crypto import SecretBox, is_encrypted
from store.records import ErrorInfo, ExecutionRecord
from store.tables import Config, Execution, ExecutionAttempt, Plan, PlanContext

__all__ = [
    "RunInputs",
    "StartedRun",
    "close_attempt",
    "current_attempt",
    "decrypt_values",
    "finish_run",
    "insert_auth_run",
    "load_run_inputs",
    "mark_rate_limited",
    "mark_running",
    "requeue_for_retry",
    "requeue_run",
    "start_run",
]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What one run reads from the database. ``plan_definition`` is None when the plan is gone."""

    plan_id: UUID | None
    plan_updated_at: datetime | None
    plan_definition: Json | None
    config_values: Json
    secrets: tuple[str, ...]
    context: Json
    # The auth flow the run uses (the plan's, else the config's) and the config's rate-limit
    # header names (configs.rate_limit_headers; None when it keeps the defaults).
    auth_flow_id: UUID | None = None
    rate_limit_headers: Json | None = None


def _secret_leaves(document: Any, box: SecretBox) -> Iterator[str]:
    if is_encrypted(document):
        plain = box.decrypt(document)
        if isinstance(plain, str):
            yield plain
        elif plain is not None:
            yield from _strings(plain)
    elif isinstance(document, dict):
        for value in document.values():
            yield from _secret_leaves(value, box)
    elif isinstance(document, list):
        for value in document:
            yield from _secret_leaves(value, box)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def decrypt_values(values: Json, box: SecretBox) -> tuple[Json, tuple[str, ...]]:
    """The plaintext config values and the secret strings among them (for the redactor)."""
    plain = box.decrypt_tree(values)
    secrets = tuple(s for s in _secret_leaves(values, box) if s)
    return (plain if isinstance(plain, dict) else {}), secrets


async def load_run_inputs(
    session: AsyncSession,
    tenant_id: str,
    *,
    plan_id: UUID | None,
    plan_key: str,
    config_id: UUID | None,
    secrets: SecretBox,
) -> RunInputs:
    """Plan (by id, else by key), decrypted config values and the persisted context."""
    plan_query = select(Plan.id, Plan.updated_at, Plan.definition).where(Plan.tenant_id == tenant_id)
    plan_query = (
        plan_query.where(Plan.id == plan_id)
        if plan_id is not None
        else plan_query.where(Plan.key == plan_key)
    )
    plan = (await session.execute(plan_query)).first()
    values: Json = {}
    found_secrets: tuple[str, ...] = ()
    context: Json = {}
    if config_id is not None:
        raw = await session.scalar(
            select(Config.values).where(Config.tenant_id == tenant_id, Config.id == config_id)
        )
        if raw is not None:
            values, found_secrets = decrypt_values(raw, secrets)
        if plan is not None:
            stored = await session.scalar(
                select(PlanContext.context).where(
                    PlanContext.tenant_id == tenant_id,
                    PlanContext.plan_id == plan.id,
                    PlanContext.config_id == config_id,
                )
            )
            context = dict(stored) if stored else {}
    if plan is None:
        return RunInputs(None, None, None, values, found_secrets, context)
    return RunInputs(plan.id, plan.updated_at, dict(plan.definition), values, found_secrets, context)


async def current_attempt(session: AsyncSession, tenant_id: str, execution_id: UUID) -> int:
    """The retry attempt the execution is at: 1 + its attempts that failed. A job envelope with
    a lower attempt is a stale duplicate and must not run."""
    failed = await session.scalar(
        select(func.count())
        .select_from(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id == execution_id,
            ExecutionAttempt.outcome == "failed",
        )
    )
    return 1 + int(failed or 0)


async def close_attempt(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    attempt: int,
    outcome: str,
    error: ErrorInfo | None,
) -> bool:
    """Close attempt ``attempt`` if it is still this worker's (outcome running). False means
    another worker took the job over (or it was cancelled): the caller must write nothing else."""
    result = await session.execute(
        update(ExecutionAttempt)
        .where(
            ExecutionAttempt.tenant_id == tenant_id,
            ExecutionAttempt.execution_id == execution_id,
            ExecutionAttempt.attempt == attempt,
            ExecutionAttempt.outcome == "running",
        )
        .values(outcome=outcome, finished_at=func.now(), error=error.to_json() if error else None)
        .returning(ExecutionAttempt.id)
    )
    return result.first() is not None


async def requeue_for_retry(
    session: AsyncSession,
    tenant_id: str,
    execution_id: UUID,
    *,
    resume_at: datetime,
    error: ErrorInfo | None,
    stats: Json,
) -> bool:
    """Put a running execution back to queued until ``resume_at`` (its retry). ``enqueued_at``
    is cleared: the scheduler's sweep re-enqueues the retry if the worker dies before it does."""
    result = await session.execute(
        update(Execution)
        .where(
            Execution.tenant_id == tenant_id,
            Execution.id == execution_id,
            Execution.status == "running",
        )
        .values(
            status="queued",
            resume_at=resume_at,
            enqueued_at=None,
            error=error.to_json() if error else None,
            stats=stats,
        )
        .returning(Execution.id)
    )
    return result.first() is not None


# --- The worker's hot path: one statement to start a run, one to record its outcome ------------
#
# These take a raw asyncpg connection (no ORM, prepared once per connection by asyncpg's statement
# cache) and run in autocommit: each is a single statement, so it is atomic by itself and holds
# the row locks of the pair's statistics and context rows only for its own duration.
# JSON crosses as text (``$n::text::jsonb`` in, ``col::text`` out), whatever codecs the
# connection has.

_RUNNABLE_SQL = "('queued', 'rate_limited', 'running')"
_WORKER_LOST = orjson.dumps(
    ErrorInfo(code="worker_lost", message="the worker stopped responding").to_json()
).decode()

# $1 tenant, $2 execution id, $3 the envelope's attempt, $4 worker name, $5 worker_lost error.
# - prior: the attempt timeline as this statement's snapshot sees it (stale guard, lost count);
# - started: RUNNING, attempt N+1, unless final/gone/stale (then no row: acknowledge and skip);
# - lost: still-open earlier attempts closed as worker_lost; opened: attempt N+1;
# - then the plan (by id, else by key), the config's values and the pair's context.
# ``before_attempts`` is the attempt count of the snapshot: when it is not ``attempts - 1``, a
# concurrent start committed while this one waited for the row lock, and its attempt (invisible
# to this snapshot) is closed by CLOSE_CONCURRENT_SQL.
START_RUN_SQL = f"""
WITH prior AS (
    SELECT count(*) FILTER (WHERE a.outcome = 'failed') AS failed,
           count(*) FILTER (WHERE a.outcome = 'worker_lost') AS lost
    FROM execution_attempts a
    WHERE a.tenant_id = $1 AND a.execution_id = $2
),
before AS (
    SELECT e.attempts FROM executions e WHERE e.tenant_id = $1 AND e.id = $2
),
started AS (
    UPDATE executions e
    SET status = 'running', attempts = e.attempts + 1, started_at = coalesce(e.started_at, now()),
        resume_at = NULL
    WHERE e.tenant_id = $1 AND e.id = $2 AND e.status IN {_RUNNABLE_SQL}
      AND $3::int >= 1 + (SELECT failed FROM prior)
    RETURNING e.id, e.tenant_id, e.plan_key, e.plan_id, e.config_id, e.integration, e.auth_flow_id,
              e.parent_id, e.replay_of, e.step_path, e.kind, e.trigger, e.status, e.resume_at, e.error,
              e.stats, e.idempotency_key, e.trace_context, e.cancel_requested, e.attempts, e.created_at,
              e.enqueued_at, e.started_at, e.finished_at
),
lost AS (
    UPDATE execution_attempts a
    SET outcome = 'worker_lost', finished_at = now(), error = $5::text::jsonb
    WHERE a.tenant_id = $1 AND a.execution_id = $2 AND a.outcome = 'running'
      AND EXISTS (SELECT 1 FROM started)
    RETURNING a.attempt
),
opened AS (
    INSERT INTO execution_attempts (tenant_id, id, execution_id, attempt, worker)
    SELECT s.tenant_id, gen_random_uuid(), s.id, s.attempts, $4::text FROM started s
    RETURNING attempt
)
SELECT s.id, s.tenant_id, s.plan_key, s.plan_id, s.config_id, s.integration, s.auth_flow_id,
       s.parent_id, s.replay_of, s.step_path, s.kind, s.trigger, s.status, s.resume_at,
       s.error::text AS error, s.stats::text AS stats, s.idempotency_key,
       s.trace_context::text AS trace_context, s.cancel_requested, s.attempts, s.created_at,
       s.enqueued_at, s.started_at, s.finished_at,
       (SELECT attempts FROM before) AS before_attempts,
       (SELECT lost FROM prior) + (SELECT count(*) FROM lost) AS lost_deliveries,
       p.id AS p_id, p.updated_at AS p_updated_at, p.definition::text AS p_definition,
       c.values::text AS c_values, pc.context::text AS context,
       coalesce(p.auth_flow_id, c.auth_flow_id) AS run_auth_flow_id,
       nullif(c.rate_limit_headers, '{{}}'::jsonb)::text AS c_rate_limit_headers
FROM started s
LEFT JOIN LATERAL (
    SELECT p.id, p.updated_at, p.definition, p.auth_flow_id FROM plans p
    WHERE p.tenant_id = s.tenant_id AND s.plan_id IS NOT NULL AND p.id = s.plan_id
    UNION ALL
    SELECT p.id, p.updated_at, p.definition, p.auth_flow_id FROM plans p
    WHERE p.tenant_id = s.tenant_id AND s.plan_id IS NULL AND p.key = s.plan_key
    LIMIT 1
) p ON true
LEFT JOIN configs c ON c.tenant_id = s.tenant_id AND c.id = s.config_id
LEFT JOIN plan_contexts pc
    ON pc.tenant_id = s.tenant_id AND pc.plan_id = p.id AND pc.config_id = s.config_id
"""

# $1 tenant, $2 execution id, $3 this attempt, $4 worker_lost error: close any attempt before
# this one that is still open (after a start raced this one for the row lock).
CLOSE_CONCURRENT_SQL = """
UPDATE execution_attempts a
SET outcome = 'worker_lost', finished_at = now(), error = $4::text::jsonb
WHERE a.tenant_id = $1 AND a.execution_id = $2 AND a.outcome = 'running' AND a.attempt < $3
"""


@dataclass(frozen=True, slots=True)
class StartedRun:
    """A started attempt: the execution (``attempt_count`` is this attempt; ``attempts`` is left
    empty), what the run reads, and how many of its deliveries were lost with their worker."""

    execution: ExecutionRecord
    inputs: RunInputs
    lost_deliveries: int


def _json_text(value: str | None) -> Any:
    return orjson.loads(value) if value is not None else None


async def start_run(
    conn: Any, tenant_id: str, execution_id: UUID, *, attempt: int, worker: str, secrets: SecretBox
) -> StartedRun | None:
    """``current_attempt`` + ``executions_repo.start_attempt`` + ``load_run_inputs`` in one
    statement on a raw asyncpg connection. None when the execution is final, gone, another
    tenant's, or ``attempt`` is a stale delivery (lower than the attempt the execution is at)."""
    row = await conn.fetchrow(START_RUN_SQL, tenant_id, execution_id, attempt, worker, _WORKER_LOST)
    if row is None:
        return None
    lost = int(row["lost_deliveries"])
    if row["before_attempts"] != row["attempts"] - 1:
        status = await conn.execute(
            CLOSE_CONCURRENT_SQL, tenant_id, execution_id, row["attempts"], _WORKER_LOST
        )
        lost += int(status.rsplit(" ", 1)[-1] or 0)
    execution = ExecutionRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        plan_key=row["plan_key"],
        plan_id=row["plan_id"],
        config_id=row["config_id"],
        integration=row["integration"],
        auth_flow_id=row["auth_flow_id"],
        parent_id=row["parent_id"],
        replay_of=row["replay_of"],
        step_path=row["step_path"],
        kind=row["kind"],
        trigger=row["trigger"],
        status=row["status"],
        resume_at=row["resume_at"],
        error=ErrorInfo.from_json(_json_text(row["error"])),
        stats=_json_text(row["stats"]) or {},
        idempotency_key=row["idempotency_key"],
        trace_context=_json_text(row["trace_context"]) or {},
        cancel_requested=row["cancel_requested"],
        attempt_count=row["attempts"],
        created_at=row["created_at"],
        enqueued_at=row["enqueued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
    values: Json = {}
    found_secrets: tuple[str, ...] = ()
    context: Json = {}
    if row["c_values"] is not None:
        values, found_secrets = decrypt_values(orjson.loads(row["c_values"]), secrets)
    if row["context"] is not None:
        context = dict(orjson.loads(row["context"]) or {})
    flow_id: UUID | None = row["run_auth_flow_id"]
    headers = _json_text(row["c_rate_limit_headers"])
    if row["p_id"] is None:
        inputs = RunInputs(None, None, None, values, found_secrets, context, flow_id, headers)
    else:
        definition = orjson.loads(row["p_definition"])
        inputs = RunInputs(
            row["p_id"], row["p_updated_at"], definition, values, found_secrets, context, flow_id, headers
        )
    return StartedRun(execution, inputs, lost)


_CLOSE_CTE = """
closed AS (
    UPDATE execution_attempts
    SET outcome = $4::text, finished_at = now(), error = $5::text::jsonb
    WHERE tenant_id = $1 AND execution_id = $2 AND attempt = $3 AND outcome = 'running'
    RETURNING 1
)"""

# $1 tenant, $2 execution, $3 attempt, $4 attempt outcome, $5 error, $6 final status, $7 stats,
# $8 store the context?, $9 plan id, $10 config id, $11 context, $12 record statistics?,
# $13 plan key, $14 success (0/1), $15 failure (0/1), $16 api calls, $17 records, $18 bytes.
FINISH_RUN_SQL = f"""
WITH {_CLOSE_CTE},
finished AS (
    UPDATE executions
    SET status = $6::text, finished_at = now(), error = $5::text::jsonb, stats = $7::text::jsonb
    WHERE tenant_id = $1 AND id = $2 AND status IN {_RUNNABLE_SQL} AND EXISTS (SELECT 1 FROM closed)
    RETURNING 1
),
context AS (
    INSERT INTO plan_contexts AS pc (tenant_id, plan_id, config_id, context)
    SELECT $1, $9::uuid, $10::uuid, $11::text::jsonb WHERE $8::bool AND EXISTS (SELECT 1 FROM finished)
    ON CONFLICT (tenant_id, plan_id, config_id)
    DO UPDATE SET context = excluded.context, updated_at = now()
    RETURNING 1
),
statistics AS (
    INSERT INTO plan_statistics AS ps (
        tenant_id, plan_key, config_id, last_run_at, last_status, last_execution_id,
        success_count, failure_count, api_calls, records, bytes, last_error
    )
    SELECT $1, $13::text, $10::uuid, now(), $6::text, $2, $14::bigint, $15::bigint, $16::bigint,
           $17::bigint, $18::bigint, $5::text::jsonb
    WHERE $12::bool AND EXISTS (SELECT 1 FROM finished)
    ON CONFLICT (tenant_id, plan_key, config_id) DO UPDATE SET
        last_run_at = excluded.last_run_at,
        last_status = excluded.last_status,
        last_execution_id = excluded.last_execution_id,
        success_count = ps.success_count + excluded.success_count,
        failure_count = ps.failure_count + excluded.failure_count,
        api_calls = ps.api_calls + excluded.api_calls,
        records = ps.records + excluded.records,
        bytes = ps.bytes + excluded.bytes,
        last_error = coalesce(excluded.last_error, ps.last_error),
        updated_at = now()
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM closed) AS closed, EXISTS (SELECT 1 FROM finished) AS done
"""

# $1..$5 as above, $6 stats, $7 resume at.
REQUEUE_RUN_SQL = f"""
WITH {_CLOSE_CTE},
requeued AS (
    UPDATE executions
    SET status = 'queued', resume_at = $7::timestamptz, enqueued_at = NULL,
        error = $5::text::jsonb, stats = $6::text::jsonb
    WHERE tenant_id = $1 AND id = $2 AND status = 'running' AND EXISTS (SELECT 1 FROM closed)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM closed) AS closed, EXISTS (SELECT 1 FROM requeued) AS done
"""

_FAILURES = ("failed", "aborted")


async def finish_run(
    conn: Any,
    tenant_id: str,
    execution_id: UUID,
    *,
    attempt: int,
    outcome: str,
    status: str,
    plan_key: str,
    plan_id: UUID | None,
    config_id: UUID | None,
    error: ErrorInfo | None,
    stats: Json,
    context: Json | None,
) -> bool:
    """What the worker stores for a final attempt, in one statement: ``close_attempt`` (the fence:
    nothing else is written unless attempt ``attempt`` was still this worker's), then
    ``executions_repo.finish``, ``statistics_repo.put_context`` (``context`` given, a success
    with a plan and a config) and ``statistics_repo.record_run`` (with a config). True when the
    execution was finished by this call."""
    error_json = orjson.dumps(error.to_json()).decode() if error else None
    store_context = context is not None and plan_id is not None and config_id is not None
    row = await conn.fetchrow(
        FINISH_RUN_SQL,
        tenant_id, execution_id, attempt, outcome, error_json, status, orjson.dumps(stats).decode(),
        store_context, plan_id, config_id, orjson.dumps(context).decode() if store_context else None,
        config_id is not None, plan_key, 1 if status == "success" else 0, 1 if status in _FAILURES else 0,
        int(stats.get("requests", 0)), int(stats.get("records", 0)), int(stats.get("bytes", 0)),
    )  # fmt: skip
    return bool(row["done"])


async def requeue_run(
    conn: Any,
    tenant_id: str,
    execution_id: UUID,
    *,
    attempt: int,
    outcome: str,
    error: ErrorInfo | None,
    stats: Json,
    resume_at: datetime,
) -> bool:
    """``close_attempt`` + ``requeue_for_retry`` in one statement. True when requeued."""
    error_json = orjson.dumps(error.to_json()).decode() if error else None
    row = await conn.fetchrow(
        REQUEUE_RUN_SQL,
        tenant_id,
        execution_id,
        attempt,
        outcome,
        error_json,
        orjson.dumps(stats).decode(),
        resume_at,
    )
    return bool(row["done"])


# --- While a run waits on a rate limit, and the auth runs it makes --------------------------------

# $1 tenant, $2 execution, $3 resume at: the running execution shows RATE_LIMITED until then.
MARK_RATE_LIMITED_SQL = """
UPDATE executions SET status = 'rate_limited', resume_at = $3::timestamptz
WHERE tenant_id = $1 AND id = $2 AND status IN ('running', 'rate_limited')
"""

# $1 tenant, $2 execution, $3 the resume time that was shown (a later mark is left alone).
MARK_RUNNING_SQL = """
UPDATE executions SET status = 'running', resume_at = NULL
WHERE tenant_id = $1 AND id = $2 AND status = 'rate_limited' AND resume_at <= $3::timestamptz
"""

# $1 tenant, $2 parent execution, $3 plan key, $4 plan id, $5 config id, $6 integration,
# $7 auth flow, $8 status, $9 error, $10 started at, $11 finished at.
INSERT_AUTH_RUN_SQL = """
INSERT INTO executions (
    tenant_id, id, plan_key, plan_id, config_id, integration, auth_flow_id, parent_id, kind,
    trigger, status, error, attempts, created_at, enqueued_at, started_at, finished_at
)
VALUES ($1, gen_random_uuid(), $3, $4, $5, $6, $7, $2, 'auth', 'parent', $8, $9::text::jsonb, 1,
        $10, $10, $10, $11)
RETURNING id
"""


async def mark_rate_limited(conn: Any, tenant_id: str, execution_id: UUID, *, resume_at: datetime) -> bool:
    """Show a running execution as RATE_LIMITED until ``resume_at`` (it keeps its worker)."""
    status = await conn.execute(MARK_RATE_LIMITED_SQL, tenant_id, execution_id, resume_at)
    return bool(status.endswith(" 1"))


async def mark_running(conn: Any, tenant_id: str, execution_id: UUID, *, shown_resume_at: datetime) -> bool:
    """Back to RUNNING once the wait shown with ``shown_resume_at`` (or an earlier one) is over."""
    status = await conn.execute(MARK_RUNNING_SQL, tenant_id, execution_id, shown_resume_at)
    return bool(status.endswith(" 1"))


async def insert_auth_run(
    conn: Any,
    tenant_id: str,
    parent_id: UUID,
    *,
    plan_key: str,
    plan_id: UUID | None,
    config_id: UUID | None,
    integration: str,
    auth_flow_id: UUID,
    status: str,
    error: ErrorInfo | None,
    started_at: datetime,
    finished_at: datetime,
) -> UUID:
    """A finished child execution (kind auth, trigger parent) for one token acquisition."""
    error_json = orjson.dumps(error.to_json()).decode() if error else None
    row = await conn.fetchrow(
        INSERT_AUTH_RUN_SQL, tenant_id, parent_id, plan_key, plan_id, config_id, integration,
        auth_flow_id, status, error_json, started_at, finished_at,
    )  # fmt: skip
    child: UUID = row["id"]
    return child
