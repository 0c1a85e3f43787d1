"""The database schema, as SQLAlchemy 2 declarative tables.

Multi-tenancy rules every table follows:
- ``tenant_id TEXT NOT NULL`` is the first column, and the primary key starts with it:
  ``PRIMARY KEY (tenant_id, id)``.
- Unique constraints include ``tenant_id`` (a name is unique *within* a tenant).
- Foreign keys include ``tenant_id`` in the same position: ``(tenant_id, x_id) -> x(tenant_id, id)``,
  so a row can never point at another tenant's row.

Citus-ready: ``tenant_id`` is the distribution column. Every table can be distributed with
``SELECT create_distributed_table('<table>', 'tenant_id', colocate_with => 'integrations')``
(integrations first, then the others), because every primary key, unique constraint and foreign
key contains it. Citus is not required; plain PostgreSQL (13+) runs the same schema.

``store/migrations/versions`` creates exactly this schema (a test compares them), plus the SQL
functions that maintain the monthly partitions of ``rate_limit_states``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _uuid() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), nullable=False, default=uuid.uuid4)


def _tenant() -> Mapped[str]:
    return mapped_column(Text, nullable=False)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "name"),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    config_schema: Mapped[Json | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class AuthFlow(Base):
    """How a token is obtained. ``definition`` holds the type-specific fields; its secrets
    (client_secret, refresh_token) are stored as ``{"$enc": ...}``. ``refresh_token`` and
    ``token_version`` are the runtime token state: a rotated refresh token, swapped with
    compare-and-swap on ``token_version``."""

    __tablename__ = "auth_flows"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "integration_id", "name"),
        ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"]),
        CheckConstraint(
            "type IN ('oauth2_client_credentials', 'oauth2_refresh_token', 'custom')", name="type"
        ),
        CheckConstraint("status IN ('unknown', 'active', 'broken')", name="status"),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    integration_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    definition: Mapped[Json] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="unknown")
    status_message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    refresh_token: Mapped[Json | None] = mapped_column(JSONB, nullable=True)
    token_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Config(Base):
    __tablename__ = "configs"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "integration_id", "name"),
        ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"]),
        ForeignKeyConstraint(["tenant_id", "auth_flow_id"], ["auth_flows.tenant_id", "auth_flows.id"]),
        Index("ix_configs_tenant_integration_enabled", "tenant_id", "integration_id", "enabled"),
        Index("ix_configs_tenant_auth_flow", "tenant_id", "auth_flow_id"),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    integration_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    values: Mapped[Json] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    auth_flow_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    rate_limit_headers: Mapped[Json] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Plan(Base):
    """``definition`` is the validated plan document exactly as the client sent it."""

    __tablename__ = "plans"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "key"),
        ForeignKeyConstraint(["tenant_id", "integration_id"], ["integrations.tenant_id", "integrations.id"]),
        ForeignKeyConstraint(["tenant_id", "auth_flow_id"], ["auth_flows.tenant_id", "auth_flows.id"]),
        Index("ix_plans_tenant_integration", "tenant_id", "integration_id"),
        Index("ix_plans_tenant_enabled", "tenant_id", "enabled"),
        Index("ix_plans_tenant_auth_flow", "tenant_id", "auth_flow_id"),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    key: Mapped[str] = mapped_column(Text, nullable=False)
    integration_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    integration_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    definition: Mapped[Json] = mapped_column(JSONB, nullable=False)
    wait_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    auth_flow_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Execution(Base):
    """One run of a plan (kind 'plan') or of an auth flow (kind 'auth') for one config.

    No foreign keys to plans or configs: deleting either keeps the execution history."""

    __tablename__ = "executions"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        ForeignKeyConstraint(["tenant_id", "parent_id"], ["executions.tenant_id", "executions.id"]),
        ForeignKeyConstraint(["tenant_id", "replay_of"], ["executions.tenant_id", "executions.id"]),
        CheckConstraint("kind IN ('plan', 'auth')", name="kind"),
        CheckConstraint("trigger IN ('schedule', 'manual', 'retry', 'replay', 'parent')", name="trigger"),
        CheckConstraint(
            "status IN ('queued', 'running', 'rate_limited', 'success', 'failed', 'aborted', 'cancelled')",
            name="status",
        ),
        Index(
            "uq_executions_tenant_idempotency_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_executions_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_executions_tenant_plan_created", "tenant_id", "plan_key", "created_at", "id"),
        Index("ix_executions_tenant_status_created", "tenant_id", "status", "created_at", "id"),
        Index("ix_executions_tenant_parent", "tenant_id", "parent_id"),
        Index(
            "ix_executions_resume_at",
            "resume_at",
            postgresql_where=text("status = 'rate_limited'"),
        ),
        # 0002: the scheduler's "last run of each pair" (newest first) ...
        Index(
            "ix_executions_pair_created",
            "tenant_id",
            "plan_key",
            "config_id",
            text("created_at DESC"),
            postgresql_where=text("kind = 'plan' AND parent_id IS NULL"),
        ),
        # ... at most one active scheduled execution per pair (the scheduler skips a conflict) ...
        Index(
            "uq_executions_active_schedule",
            "tenant_id",
            "plan_key",
            "config_id",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running', 'rate_limited') AND trigger = 'schedule'"),
        ),
        # ... whether a pair has a queued, running or rate-limited run (of any trigger) ...
        Index(
            "ix_executions_pair_active",
            "tenant_id",
            "plan_key",
            "config_id",
            postgresql_where=text(
                "status IN ('queued', 'running', 'rate_limited') AND kind = 'plan' AND parent_id IS NULL"
            ),
        ),
        # ... and its sweep of queued executions whose job was never confirmed in Redis.
        Index(
            "ix_executions_unconfirmed",
            "created_at",
            postgresql_where=text("status = 'queued' AND enqueued_at IS NULL"),
        ),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    plan_key: Mapped[str] = mapped_column(Text, nullable=False)
    plan_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    config_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    integration: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    auth_flow_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    replay_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    step_path: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="plan")
    trigger: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    resume_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[Json | None] = mapped_column(JSONB, nullable=True)
    stats: Mapped[Json] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    idempotency_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    trace_context: Mapped[Json] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = _created()
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ExecutionAttempt(Base):
    """One delivery of an execution's job to a worker: the attempt timeline."""

    __tablename__ = "execution_attempts"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "execution_id", "attempt"),
        ForeignKeyConstraint(
            ["tenant_id", "execution_id"],
            ["executions.tenant_id", "executions.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "outcome IN ('running', 'success', 'failed', 'aborted', 'rate_limited', 'worker_lost',"
            " 'cancelled')",
            name="outcome",
        ),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    execution_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    worker: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    started_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default="running")
    error: Mapped[Json | None] = mapped_column(JSONB, nullable=True)


class PlanContext(Base):
    """The persistent ``context.*`` of one plan for one config."""

    __tablename__ = "plan_contexts"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "plan_id", "config_id"),
        ForeignKeyConstraint(["tenant_id", "plan_id"], ["plans.tenant_id", "plans.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "config_id"], ["configs.tenant_id", "configs.id"], ondelete="CASCADE"
        ),
        Index("ix_plan_contexts_tenant_config", "tenant_id", "config_id"),
    )

    tenant_id: Mapped[str] = _tenant()
    plan_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    config_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    context: Mapped[Json] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = _updated()


class PlanStatistics(Base):
    """Aggregates per plan and config, updated with ``SET x = x + :delta`` (no read-modify-write).
    Keyed by plan key, with no foreign keys: statistics outlive deleted plans and configs."""

    __tablename__ = "plan_statistics"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "plan_key", "config_id"),)

    tenant_id: Mapped[str] = _tenant()
    plan_key: Mapped[str] = mapped_column(Text, nullable=False)
    config_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_execution_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    success_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    failure_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    api_calls: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    records: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    last_error: Mapped[Json | None] = mapped_column(JSONB, nullable=True)
    updated_at: Mapped[datetime] = _updated()


class DlqEntry(Base):
    """A job that failed for good. ``job`` is the payload to re-enqueue; ``attempts`` the attempt
    timeline copied from the execution. A retried entry keeps its row for the audit trail
    (``retried_execution_id``) and disappears from every read."""

    __tablename__ = "dlq_entries"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        ForeignKeyConstraint(["tenant_id", "execution_id"], ["executions.tenant_id", "executions.id"]),
        Index(
            "ix_dlq_entries_tenant_created",
            "tenant_id",
            "created_at",
            "id",
            postgresql_where=text("retried_execution_id IS NULL"),
        ),
        Index(
            "ix_dlq_entries_created",
            "created_at",
            "id",
            postgresql_where=text("retried_execution_id IS NULL"),
        ),
        Index("ix_dlq_entries_tenant_execution", "tenant_id", "execution_id"),
        CheckConstraint(
            "reason IN ('retries_exhausted', 'deliveries_exhausted', 'timeout', 'auth_failed',"
            " 'invalid_definition', 'internal')",
            name="reason",
        ),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    execution_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    plan_key: Mapped[str] = mapped_column(Text, nullable=False)
    config_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    last_error: Mapped[Json | None] = mapped_column(JSONB, nullable=True)
    attempts: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    job: Mapped[Json] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created()
    retried_execution_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RateLimitState(Base):
    """Time series of upstream rate-limit observations, partitioned by month of ``observed_at``
    (see the partition functions in the migration). 13 months are kept. No foreign keys: the
    series is append-only and dropped a partition at a time."""

    __tablename__ = "rate_limit_states"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id", "observed_at"),
        Index(
            "ix_rate_limit_states_tenant_config_endpoint_observed",
            "tenant_id",
            "config_id",
            "endpoint",
            "observed_at",
        ),
        CheckConstraint("source IN ('headers', 'limiter')", name="source"),
        {"postgresql_partition_by": "RANGE (observed_at)"},
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    config_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    endpoint: Mapped[str] = mapped_column(Text, nullable=False)
    remaining: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit: Mapped[int | None] = mapped_column("limit", BigInteger, nullable=True)
    reset_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    consumption_rate_per_minute: Mapped[float | None] = mapped_column(Double, nullable=True)
    recovery_eta_seconds: Mapped[float | None] = mapped_column(Double, nullable=True)
    exhaustion_projection_seconds: Mapped[float | None] = mapped_column(Double, nullable=True)
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default="headers")
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RateLimitAlert(Base):
    """WARNING (<= 20% left) / CRITICAL (<= 10% left) alerts; at most one open per endpoint."""

    __tablename__ = "rate_limit_alerts"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "id"),
        CheckConstraint("severity IN ('WARNING', 'CRITICAL')", name="severity"),
        Index(
            "uq_rate_limit_alerts_open",
            "tenant_id",
            "config_id",
            "endpoint",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_rate_limit_alerts_tenant_opened", "tenant_id", "opened_at", "id"),
    )

    tenant_id: Mapped[str] = _tenant()
    id: Mapped[uuid.UUID] = _uuid()
    config_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    endpoint: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = mapped_column(Text, nullable=False)
    opened_at: Mapped[datetime] = _created()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    remaining: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit: Mapped[int | None] = mapped_column("limit", BigInteger, nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")


ALL_TABLES = [mapper.local_table for mapper in Base.registry.mappers]
