"""Retry a database transaction while PostgreSQL is unreachable.

Only connection-level failures are retried (refused, reset, shutting down, starting up,
statement timeout on a dead socket); a constraint violation or a bug propagates at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

__all__ = ["in_transaction", "is_transient", "on_connection"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_NAMES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InterfaceError",
        "InternalClientError",
        "TooManyConnectionsError",
        "ConnectionRejectionError",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database is unreachable right now"."""
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        orig = exc.orig
        names = {cls.__name__ for cls in type(orig).__mro__} if orig is not None else set()
        return bool(names & _TRANSIENT_NAMES) or isinstance(orig, OSError | TimeoutError)
    # asyncpg's own exceptions, raised on a raw connection (see on_connection)
    return type(exc).__module__.startswith("asyncpg") and bool(
        {cls.__name__ for cls in type(exc).__mro__} & _TRANSIENT_NAMES
    )


async def in_transaction(
    sessions: async_sessionmaker[AsyncSession],
    what: str,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    max_backoff_s: float = 2.0,
) -> T:
    """Run ``work`` in one transaction, retrying the whole transaction until the database answers.
    Cancellation (a worker's drain deadline) ends the retries."""
    backoff = 0.1
    while True:
        try:
            async with sessions.begin() as session:
                return await work(session)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s: database unavailable (%s); retrying in %.1fs", what, type(exc).__name__, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_s)


async def on_connection(
    engine: AsyncEngine,
    what: str,
    work: Callable[[Any], Awaitable[T]],
    *,
    max_backoff_s: float = 2.0,
) -> T:
    """Run ``work`` on a pooled connection's raw asyncpg connection (autocommit: each statement
    commits by itself), retrying while the database is unreachable, like in_transaction. A
    connection that failed is discarded from the pool, never handed out again."""
    backoff = 0.1
    while True:
        try:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                try:
                    return await work(raw)
                except BaseException as exc:
                    if not isinstance(exc, Exception) or is_transient(exc) or raw.is_closed():
                        # a statement cut short (cancelled) or a dead socket: never reuse it
                        await conn.invalidate()
                    raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s: database unavailable (%s); retrying in %.1fs", what, type(exc).__name__, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_s)
