"""Initial schema: every table of store/tables.py, and the partition maintenance functions of
rate_limit_states (monthly RANGE partitions on observed_at, 13 months kept).

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25 16:53:55.510749
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Creates one partition per month, named rate_limit_states_yYYYYmMM, bounds in UTC.
CREATE_PARTITIONS_FUNCTION = """
CREATE OR REPLACE FUNCTION orchid_create_rate_limit_partitions(start_month date, months integer)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    first_month date := date_trunc('month', start_month)::date;
    lower_bound date;
    upper_bound date;
    partition_name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        lower_bound := (first_month + make_interval(months => i))::date;
        upper_bound := (lower_bound + interval '1 month')::date;
        partition_name := format(
            'rate_limit_states_y%sm%s', to_char(lower_bound, 'YYYY'), to_char(lower_bound, 'MM')
        );
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF rate_limit_states FOR VALUES FROM (%L) TO (%L)',
                partition_name, lower_bound::text || ' 00:00:00+00', upper_bound::text || ' 00:00:00+00'
            );
            RETURN NEXT partition_name;
        END IF;
    END LOOP;
END
$$;
"""

# Drops every partition whose range ends on or before the first day of now_at's month (UTC)
# minus retention_months: with 13, on 2025-11-15 the partitions up to 2024-09 go, 2024-10 stays.
DROP_PARTITIONS_FUNCTION = """
CREATE OR REPLACE FUNCTION orchid_drop_rate_limit_partitions(
    retention_months integer DEFAULT 13, now_at timestamptz DEFAULT now()
)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz :=
        (date_trunc('month', now_at AT TIME ZONE 'UTC') - make_interval(months => retention_months))
        AT TIME ZONE 'UTC';
    part record;
    upper_bound timestamptz;
BEGIN
    FOR part IN
        SELECT c.oid::regclass::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'rate_limit_states'::regclass
        ORDER BY 1
    LOOP
        upper_bound := substring(part.bound FROM 'TO \\(''([^'']+)''\\)')::timestamptz;
        IF upper_bound IS NOT NULL AND upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', part.name);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("plan_key", sa.Text(), nullable=False),
        sa.Column("plan_id", sa.UUID(), nullable=True),
        sa.Column("config_id", sa.UUID(), nullable=True),
        sa.Column("integration", sa.Text(), server_default="", nullable=False),
        sa.Column("auth_flow_id", sa.UUID(), nullable=True),
        sa.Column("parent_id", sa.UUID(), nullable=True),
        sa.Column("replay_of", sa.UUID(), nullable=True),
        sa.Column("step_path", sa.Text(), server_default="", nullable=False),
        sa.Column("kind", sa.Text(), server_default="plan", nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column(
            "trace_context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('plan', 'auth')", name=op.f("ck_executions_kind")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'rate_limited', 'success', 'failed', 'aborted', 'cancelled')",
            name=op.f("ck_executions_status"),
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'manual', 'retry', 'replay', 'parent')",
            name=op.f("ck_executions_trigger"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "parent_id"],
            ["executions.tenant_id", "executions.id"],
            name=op.f("fk_executions_tenant_id_parent_id_executions"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "replay_of"],
            ["executions.tenant_id", "executions.id"],
            name=op.f("fk_executions_tenant_id_replay_of_executions"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_executions")),
    )
    op.create_index(
        "ix_executions_resume_at",
        "executions",
        ["resume_at"],
        unique=False,
        postgresql_where=sa.text("status = 'rate_limited'"),
    )
    op.create_index(
        "ix_executions_tenant_created", "executions", ["tenant_id", "created_at", "id"], unique=False
    )
    op.create_index("ix_executions_tenant_parent", "executions", ["tenant_id", "parent_id"], unique=False)
    op.create_index(
        "ix_executions_tenant_plan_created",
        "executions",
        ["tenant_id", "plan_key", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_executions_tenant_status_created",
        "executions",
        ["tenant_id", "status", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "uq_executions_tenant_idempotency_key",
        "executions",
        ["tenant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "integrations",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("config_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_integrations_tenant_id_name")),
    )
    op.create_table(
        "plan_statistics",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("plan_key", sa.Text(), nullable=False),
        sa.Column("config_id", sa.UUID(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Text(), nullable=True),
        sa.Column("last_execution_id", sa.UUID(), nullable=True),
        sa.Column("success_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("failure_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("api_calls", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("records", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "plan_key", "config_id", name=op.f("pk_plan_statistics")),
    )
    op.create_table(
        "rate_limit_alerts",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("config_id", sa.UUID(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remaining", sa.BigInteger(), nullable=True),
        sa.Column("limit", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("severity IN ('WARNING', 'CRITICAL')", name=op.f("ck_rate_limit_alerts_severity")),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_rate_limit_alerts")),
    )
    op.create_index(
        "ix_rate_limit_alerts_tenant_opened",
        "rate_limit_alerts",
        ["tenant_id", "opened_at", "id"],
        unique=False,
    )
    op.create_index(
        "uq_rate_limit_alerts_open",
        "rate_limit_alerts",
        ["tenant_id", "config_id", "endpoint"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_table(
        "rate_limit_states",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("config_id", sa.UUID(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=True),
        sa.Column("limit", sa.BigInteger(), nullable=True),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consumption_rate_per_minute", sa.Double(), nullable=True),
        sa.Column("recovery_eta_seconds", sa.Double(), nullable=True),
        sa.Column("exhaustion_projection_seconds", sa.Double(), nullable=True),
        sa.Column("source", sa.Text(), server_default="headers", nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('headers', 'limiter')", name=op.f("ck_rate_limit_states_source")),
        sa.PrimaryKeyConstraint("tenant_id", "id", "observed_at", name=op.f("pk_rate_limit_states")),
        postgresql_partition_by="RANGE (observed_at)",
    )
    op.create_index(
        "ix_rate_limit_states_tenant_config_endpoint_observed",
        "rate_limit_states",
        ["tenant_id", "config_id", "endpoint", "observed_at"],
        unique=False,
    )
    op.create_table(
        "auth_flows",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("integration_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column(
            "definition",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default="unknown", nullable=False),
        sa.Column("status_message", sa.Text(), server_default="", nullable=False),
        sa.Column("refresh_token", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("token_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('unknown', 'active', 'broken')", name=op.f("ck_auth_flows_status")),
        sa.CheckConstraint(
            "type IN ('oauth2_client_credentials', 'oauth2_refresh_token', 'custom')",
            name=op.f("ck_auth_flows_type"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "integration_id"],
            ["integrations.tenant_id", "integrations.id"],
            name=op.f("fk_auth_flows_tenant_id_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_auth_flows")),
        sa.UniqueConstraint(
            "tenant_id", "integration_id", "name", name=op.f("uq_auth_flows_tenant_id_integration_id_name")
        ),
    )
    op.create_table(
        "dlq_entries",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("execution_id", sa.UUID(), nullable=False),
        sa.Column("plan_key", sa.Text(), nullable=False),
        sa.Column("config_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("last_error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "attempts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "job",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retried_execution_id", sa.UUID(), nullable=True),
        sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "reason IN ('retries_exhausted', 'deliveries_exhausted', 'timeout', 'auth_failed',"
            " 'invalid_definition', 'internal')",
            name=op.f("ck_dlq_entries_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "execution_id"],
            ["executions.tenant_id", "executions.id"],
            name=op.f("fk_dlq_entries_tenant_id_execution_id_executions"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_dlq_entries")),
    )
    op.create_index(
        "ix_dlq_entries_created",
        "dlq_entries",
        ["created_at", "id"],
        unique=False,
        postgresql_where=sa.text("retried_execution_id IS NULL"),
    )
    op.create_index(
        "ix_dlq_entries_tenant_created",
        "dlq_entries",
        ["tenant_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("retried_execution_id IS NULL"),
    )
    op.create_index(
        "ix_dlq_entries_tenant_execution", "dlq_entries", ["tenant_id", "execution_id"], unique=False
    )
    op.create_table(
        "execution_attempts",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("execution_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.Text(), server_default="", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), server_default="running", nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('running', 'success', 'failed', 'aborted', 'rate_limited', 'worker_lost',"
            " 'cancelled')",
            name=op.f("ck_execution_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "execution_id"],
            ["executions.tenant_id", "executions.id"],
            name=op.f("fk_execution_attempts_tenant_id_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_execution_attempts")),
        sa.UniqueConstraint(
            "tenant_id",
            "execution_id",
            "attempt",
            name=op.f("uq_execution_attempts_tenant_id_execution_id_attempt"),
        ),
    )
    op.create_table(
        "configs",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("integration_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "values",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("auth_flow_id", sa.UUID(), nullable=True),
        sa.Column(
            "rate_limit_headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "auth_flow_id"],
            ["auth_flows.tenant_id", "auth_flows.id"],
            name=op.f("fk_configs_tenant_id_auth_flow_id_auth_flows"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "integration_id"],
            ["integrations.tenant_id", "integrations.id"],
            name=op.f("fk_configs_tenant_id_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_configs")),
        sa.UniqueConstraint(
            "tenant_id", "integration_id", "name", name=op.f("uq_configs_tenant_id_integration_id_name")
        ),
    )
    op.create_index("ix_configs_tenant_auth_flow", "configs", ["tenant_id", "auth_flow_id"], unique=False)
    op.create_index(
        "ix_configs_tenant_integration_enabled",
        "configs",
        ["tenant_id", "integration_id", "enabled"],
        unique=False,
    )
    op.create_table(
        "plans",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("integration_name", sa.Text(), nullable=True),
        sa.Column("integration_id", sa.UUID(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("wait_seconds", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("auth_flow_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "auth_flow_id"],
            ["auth_flows.tenant_id", "auth_flows.id"],
            name=op.f("fk_plans_tenant_id_auth_flow_id_auth_flows"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "integration_id"],
            ["integrations.tenant_id", "integrations.id"],
            name=op.f("fk_plans_tenant_id_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_plans")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_plans_tenant_id_key")),
    )
    op.create_index("ix_plans_tenant_auth_flow", "plans", ["tenant_id", "auth_flow_id"], unique=False)
    op.create_index("ix_plans_tenant_enabled", "plans", ["tenant_id", "enabled"], unique=False)
    op.create_index("ix_plans_tenant_integration", "plans", ["tenant_id", "integration_id"], unique=False)
    op.create_table(
        "plan_contexts",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("plan_id", sa.UUID(), nullable=False),
        sa.Column("config_id", sa.UUID(), nullable=False),
        sa.Column(
            "context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "config_id"],
            ["configs.tenant_id", "configs.id"],
            name=op.f("fk_plan_contexts_tenant_id_config_id_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "plan_id"],
            ["plans.tenant_id", "plans.id"],
            name=op.f("fk_plan_contexts_tenant_id_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "plan_id", "config_id", name=op.f("pk_plan_contexts")),
    )
    op.create_index(
        "ix_plan_contexts_tenant_config", "plan_contexts", ["tenant_id", "config_id"], unique=False
    )

    op.execute(CREATE_PARTITIONS_FUNCTION)
    op.execute(DROP_PARTITIONS_FUNCTION)
    # This month and the next two; the maintenance job (and record_state on demand) adds more.
    op.execute("SELECT orchid_create_rate_limit_partitions((now() AT TIME ZONE 'UTC')::date, 3)")


def downgrade() -> None:
    op.drop_index("ix_plan_contexts_tenant_config", table_name="plan_contexts")
    op.drop_table("plan_contexts")
    op.drop_index("ix_plans_tenant_integration", table_name="plans")
    op.drop_index("ix_plans_tenant_enabled", table_name="plans")
    op.drop_index("ix_plans_tenant_auth_flow", table_name="plans")
    op.drop_table("plans")
    op.drop_index("ix_configs_tenant_integration_enabled", table_name="configs")
    op.drop_index("ix_configs_tenant_auth_flow", table_name="configs")
    op.drop_table("configs")
    op.drop_table("execution_attempts")
    op.drop_index("ix_dlq_entries_tenant_execution", table_name="dlq_entries")
    op.drop_index(
        "ix_dlq_entries_tenant_created",
        table_name="dlq_entries",
        postgresql_where=sa.text("retried_execution_id IS NULL"),
    )
    op.drop_index(
        "ix_dlq_entries_created",
        table_name="dlq_entries",
        postgresql_where=sa.text("retried_execution_id IS NULL"),
    )
    op.drop_table("dlq_entries")
    op.drop_table("auth_flows")
    op.drop_index("ix_rate_limit_states_tenant_config_endpoint_observed", table_name="rate_limit_states")
    op.drop_table("rate_limit_states")
    op.drop_index(
        "uq_rate_limit_alerts_open",
        table_name="rate_limit_alerts",
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.drop_index("ix_rate_limit_alerts_tenant_opened", table_name="rate_limit_alerts")
    op.drop_table("rate_limit_alerts")
    op.drop_table("plan_statistics")
    op.drop_table("integrations")
    op.drop_index(
        "uq_executions_tenant_idempotency_key",
        table_name="executions",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index("ix_executions_tenant_status_created", table_name="executions")
    op.drop_index("ix_executions_tenant_plan_created", table_name="executions")
    op.drop_index("ix_executions_tenant_parent", table_name="executions")
    op.drop_index("ix_executions_tenant_created", table_name="executions")
    op.drop_index(
        "ix_executions_resume_at",
        table_name="executions",
        postgresql_where=sa.text("status = 'rate_limited'"),
    )
    op.drop_table("executions")
    op.execute("DROP FUNCTION IF EXISTS orchid_drop_rate_limit_partitions(integer, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS orchid_create_rate_limit_partitions(date, integer)")
