"""Alembic migrations for Orchid's schema.

From Python::

    from store.migrations import upgrade_head
    upgrade_head("postgresql+asyncpg://postgres@127.0.0.1:5432/orchid")   # sync code
    await upgrade_head_async(dsn)                                          # inside an event loop

From the shell: ``python -m store.migrate`` (reads DATABASE_URL / DB_* like the server does).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

__all__ = ["HEAD", "alembic_config", "upgrade_head", "upgrade_head_async"]

HEAD = "0002_scheduler_indexes"
SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for this package; the DSN never goes through ini interpolation."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def upgrade_head_async(dsn: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on the database at ``dsn`` (an asyncpg URL)."""
    engine = create_async_engine(dsn, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


def upgrade_head(dsn: str, revision: str = "head") -> None:
    """Synchronous wrapper of :func:`upgrade_head_async`; must not be called from a running loop."""
    asyncio.run(upgrade_head_async(dsn, revision))
