"""One AsyncEngine per process and its sessionmaker (STYLE 20)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from settings.model import DatabaseSettings

__all__ = ["create_engine", "create_sessions"]


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The process' engine: DB_MAX_IDLE_CONNS pooled connections, up to DB_MAX_OPEN_CONNS in all,
    and DB_COMMAND_TIMEOUT on every statement."""
    pool_size = max(1, min(settings.max_idle_conns, settings.max_open_conns))
    return create_async_engine(
        settings.dsn,
        pool_size=pool_size,
        max_overflow=max(0, settings.max_open_conns - pool_size),
        pool_pre_ping=True,
        connect_args={"command_timeout": settings.command_timeout_s},
    )


def create_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
