"""Integrations: the external API systems a tenant polls."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import PreconditionFailedError
from store.access import raise_missing, translate_integrity_error
from store.pagination import decode_token, encode_token, page_size
from store.records import IntegrationInput, IntegrationRecord, Page
from store.schema_validation import check_schema
from store.tables import AuthFlow, Config, Integration, Plan

__all__ = ["create", "delete", "find_by_name", "get", "list_page", "update_integration"]


def _record(row: Integration) -> IntegrationRecord:
    return IntegrationRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        config_schema=row.config_schema,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _row(
    session: AsyncSession, tenant_id: str, integration_id: UUID, *, lock: bool = False
) -> Integration:
    query = select(Integration).where(Integration.tenant_id == tenant_id, Integration.id == integration_id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        await raise_missing(session, tenant_id, Integration.id, integration_id, "integration")
    return row


async def create(session: AsyncSession, tenant_id: str, data: IntegrationInput) -> IntegrationRecord:
    check_schema(data.config_schema)
    row = Integration(
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        config_schema=data.config_schema or None,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise translate_integrity_error(exc, duplicate=f"integration {data.name!r} already exists") from exc
    return _record(row)


async def get(session: AsyncSession, tenant_id: str, integration_id: UUID) -> IntegrationRecord:
    return _record(await _row(session, tenant_id, integration_id))


async def find_by_name(session: AsyncSession, tenant_id: str, name: str) -> IntegrationRecord | None:
    row = await session.scalar(
        select(Integration).where(Integration.tenant_id == tenant_id, Integration.name == name)
    )
    return _record(row) if row is not None else None


async def list_page(
    session: AsyncSession, tenant_id: str, *, size: int = 0, token: str = ""
) -> Page[IntegrationRecord]:
    """The tenant's integrations ordered by name (keyset on (name, id))."""
    limit = page_size(size)
    query = select(Integration).where(Integration.tenant_id == tenant_id)
    after = decode_token(token, [str, UUID])
    if after is not None:
        query = query.where(tuple_(Integration.name, Integration.id) > tuple_(*after))
    rows = list(await session.scalars(query.order_by(Integration.name, Integration.id).limit(limit + 1)))
    next_token = encode_token([rows[limit - 1].name, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(_record(r) for r in rows[:limit]), next_token)


async def update_integration(
    session: AsyncSession, tenant_id: str, integration_id: UUID, data: IntegrationInput
) -> IntegrationRecord:
    """Replace the writable fields. Renaming is refused while plans refer to the integration."""
    check_schema(data.config_schema)
    row = await _row(session, tenant_id, integration_id, lock=True)
    if data.name != row.name:
        plans = await _count(session, Plan, tenant_id, integration_id)
        if plans:
            raise PreconditionFailedError(
                f"integration {row.name!r} cannot be renamed while {plans} plan(s) refer to it by name"
            )
    try:
        updated = await session.scalar(
            update(Integration)
            .where(Integration.tenant_id == tenant_id, Integration.id == integration_id)
            .values(
                name=data.name,
                description=data.description,
                config_schema=data.config_schema or None,
                updated_at=func.now(),
            )
            .returning(Integration)
            .execution_options(populate_existing=True)
        )
    except IntegrityError as exc:
        raise translate_integrity_error(exc, duplicate=f"integration {data.name!r} already exists") from exc
    assert updated is not None
    return _record(updated)


async def _count(
    session: AsyncSession,
    model: type[Config] | type[Plan] | type[AuthFlow],
    tenant_id: str,
    integration_id: UUID,
) -> int:
    total = await session.scalar(
        select(func.count()).where(model.tenant_id == tenant_id, model.integration_id == integration_id)
    )
    return int(total or 0)


async def delete(session: AsyncSession, tenant_id: str, integration_id: UUID) -> None:
    """Delete an integration that nothing refers to; never cascades to configs, auth flows or plans."""
    row = await _row(session, tenant_id, integration_id, lock=True)
    users = {
        "config(s)": await _count(session, Config, tenant_id, integration_id),
        "auth flow(s)": await _count(session, AuthFlow, tenant_id, integration_id),
        "plan(s)": await _count(session, Plan, tenant_id, integration_id),
    }
    in_use = ", ".join(f"{n} {what}" for what, n in users.items() if n)
    if in_use:
        raise PreconditionFailedError(
            f"integration {row.name!r} is still used by {in_use}; delete them first"
        )
    try:
        await session.delete(row)
        await session.flush()
    except IntegrityError as exc:  # a config was added concurrently
        raise translate_integrity_error(
            exc, duplicate="", in_use=f"integration {row.name!r} is still in use"
        ) from exc
