"""Alembic environment. Runs only on a connection handed in by store.migrations (online mode)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.tables import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through store.migrations.upgrade_head(dsn) or python -m store.migrate"
        )
    context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) mode is not supported; use python -m store.migrate")
run_migrations_online()
