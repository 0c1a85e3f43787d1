"""Indexes of the scheduler's and the worker's hot queries.

- ix_executions_pair_created: the last run of each (plan, config) pair, newest first (the
  scheduler's LATERAL lookup per pair);
- uq_executions_active_schedule: at most one queued, running or rate-limited scheduled execution
  per pair (the scheduler's insert skips a conflict: ON CONFLICT DO NOTHING);
- ix_executions_pair_active: whether a pair has a queued, running or rate-limited run of any
  trigger (the scheduler's other LATERAL lookup; without it, it scans every active execution of
  the tenant for each pair);
- ix_executions_unconfirmed: the sweep of queued executions never confirmed in Redis.

Revision ID: 0002_scheduler_indexes
Revises: 0001_initial
Create Date: 2026-11-25 17:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_scheduler_indexes"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_SCHEDULE = "status IN ('queued', 'running', 'rate_limited') AND trigger = 'schedule'"


def upgrade() -> None:
    # A database that ran the scheduler before this index may hold several active scheduled
    # executions of one pair (only possible through a race): keep the newest, cancel the others.
    op.execute(
        """
        UPDATE executions e
        SET status = 'cancelled', finished_at = now(),
            error = '{"code": "duplicate_schedule", "message": "superseded by a newer scheduled run"}'
        WHERE e.status IN ('queued', 'running', 'rate_limited') AND e.trigger = 'schedule'
          AND EXISTS (
            SELECT 1 FROM executions n
            WHERE n.tenant_id = e.tenant_id AND n.plan_key = e.plan_key AND n.config_id = e.config_id
              AND n.status IN ('queued', 'running', 'rate_limited') AND n.trigger = 'schedule'
              AND (n.created_at, n.id) > (e.created_at, e.id)
          )
        """
    )
    op.create_index(
        "ix_executions_pair_created",
        "executions",
        ["tenant_id", "plan_key", "config_id", sa.literal_column("created_at DESC")],
        unique=False,
        postgresql_where=sa.text("kind = 'plan' AND parent_id IS NULL"),
    )
    op.create_index(
        "uq_executions_active_schedule",
        "executions",
        ["tenant_id", "plan_key", "config_id"],
        unique=True,
        postgresql_where=sa.text(ACTIVE_SCHEDULE),
    )
    op.create_index(
        "ix_executions_pair_active",
        "executions",
        ["tenant_id", "plan_key", "config_id"],
        unique=False,
        postgresql_where=sa.text(
            "status IN ('queued', 'running', 'rate_limited') AND kind = 'plan' AND parent_id IS NULL"
        ),
    )
    op.create_index(
        "ix_executions_unconfirmed",
        "executions",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued' AND enqueued_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_unconfirmed", table_name="executions")
    op.drop_index("ix_executions_pair_active", table_name="executions")
    op.drop_index("uq_executions_active_schedule", table_name="executions")
    op.drop_index("ix_executions_pair_created", table_name="executions")
