"""Tenant access checks and database-error translation shared by the repositories."""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import exists, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from engine.errors import (
    DuplicateResourceError,
    OrchidError,
    PreconditionFailedError,
    ResourceNotFoundError,
    TenantMismatchError,
)

__all__ = ["ensure_not_foreign", "raise_missing", "sqlstate", "translate_integrity_error"]

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"


async def raise_missing(
    session: AsyncSession, tenant_id: str, column: InstrumentedAttribute[Any], value: Any, what: str
) -> NoReturn:
    """Raise the right error for a row the caller's tenant does not have.

    TenantMismatchError (PERMISSION_DENIED) when ``value`` exists under another tenant, else
    ResourceNotFoundError. This is the one query that does not filter by tenant; it reads only
    existence, and the message names nothing but what the caller sent."""
    tenant_column = column.class_.tenant_id
    found = await session.scalar(select(exists().where(column == value, tenant_column != tenant_id)))
    if found:
        raise TenantMismatchError(f"{what} {value} is not accessible to this tenant")
    raise ResourceNotFoundError(f"{what} {value} not found")


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def translate_integrity_error(exc: IntegrityError, *, duplicate: str, in_use: str = "") -> OrchidError:
    """Map a unique violation to DuplicateResourceError and a foreign-key violation to
    PreconditionFailedError, with the caller's wording (never the database's, which can quote
    values)."""
    state = sqlstate(exc)
    if state == UNIQUE_VIOLATION:
        return DuplicateResourceError(duplicate)
    if state == FOREIGN_KEY_VIOLATION:
        return PreconditionFailedError(in_use or "the resource is referenced by other resources")
    return PreconditionFailedError("the change violates a database constraint")


async def ensure_not_foreign(
    session: AsyncSession,
    tenant_column: InstrumentedAttribute[str],
    id_column: InstrumentedAttribute[Any],
    value: Any,
    tenant_id: str,
    what: str,
) -> None:
    """For list filters: raise TenantMismatchError when ``value`` names another tenant's row.

    A value that exists nowhere is fine (history of a deleted config, for instance)."""
    foreign = await session.scalar(select(exists().where(id_column == value, tenant_column != tenant_id)))
    mine = await session.scalar(select(exists().where(id_column == value, tenant_column == tenant_id)))
    if foreign and not mine:
        raise TenantMismatchError(f"{what} {value} is not accessible to this tenant")
