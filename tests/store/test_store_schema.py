"""The migrations create exactly what store/tables.py describes, with tenant-first keys."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.tables import Base


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    partition = name is not None and name.startswith("rate_limit_states_y")
    return not (type_ == "table" and (partition or name == "alembic_version"))


async def test_migrations_match_tables(sessions: async_sessionmaker[AsyncSession]) -> None:
    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"include_object": _include, "compare_type": True, "compare_server_default": False}
        )
        return list(compare_metadata(context, Base.metadata))

    async with sessions() as session:
        conn = await session.connection()
        assert await conn.run_sync(diff) == []


async def test_every_table_is_tenant_first(sessions: async_sessionmaker[AsyncSession]) -> None:
    def check(conn: Connection) -> None:
        inspector = inspect(conn)
        for table in Base.metadata.sorted_tables:
            pk = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert pk[0] == "tenant_id", table.name
            for unique in inspector.get_unique_constraints(table.name):
                assert "tenant_id" in unique["column_names"], (table.name, unique)
            for fk in inspector.get_foreign_keys(table.name):
                assert fk["constrained_columns"][0] == "tenant_id", (table.name, fk)
                assert fk["referred_columns"][0] == "tenant_id", (table.name, fk)
            column = next(c for c in inspector.get_columns(table.name) if c["name"] == "tenant_id")
            assert column["nullable"] is False

    async with sessions() as session:
        conn = await session.connection()
        await conn.run_sync(check)
