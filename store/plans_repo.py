"""Plans, addressed by their tenant-unique key. The validated plan document is stored verbatim
in ``definition`` so that GetPlan returns exactly what was sent."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from sqlalchemy import Text, bindparam, cast, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from engine.errors import InvalidArgumentError, PreconditionFailedError
from store import auth_flows_repo
from store.access import raise_missing, translate_integrity_error
from store.pagination import decode_token, encode_token, page_size
from store.records import Page, PlanInput, PlanRecord
from store.tables import Config, Integration, Plan

__all__ = [
    "create",
    "delete",
    "get",
    "get_by_id",
    "get_document",
    "list_page",
    "set_enabled",
    "trigger_targets",
    "update_plan",
]


def _record(row: Plan) -> PlanRecord:
    return PlanRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        key=row.key,
        integration_name=row.integration_name,
        integration_id=row.integration_id,
        description=row.description,
        definition=row.definition,
        wait_seconds=row.wait_seconds,
        enabled=row.enabled,
        auth_flow_id=row.auth_flow_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _row(session: AsyncSession, tenant_id: str, key: str, *, lock: bool = False) -> Plan:
    query = select(Plan).where(Plan.tenant_id == tenant_id, Plan.key == key)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        await raise_missing(session, tenant_id, Plan.key, key, "plan")
    return row


async def _resolve_references(session: AsyncSession, tenant_id: str, data: PlanInput) -> UUID | None:
    """The id of the integration the plan names (None when it names none); checks the auth flow."""
    integration_id: UUID | None = None
    if data.integration_name:
        integration_id = await session.scalar(
            select(Integration.id).where(
                Integration.tenant_id == tenant_id, Integration.name == data.integration_name
            )
        )
        if integration_id is None:
            raise PreconditionFailedError(
                f"integration: no integration named {data.integration_name!r} exists in this tenant"
            )
    if data.auth_flow_id is not None:
        await auth_flows_repo.ensure_usable(session, tenant_id, data.auth_flow_id, integration_id)
    return integration_id


async def create(session: AsyncSession, tenant_id: str, data: PlanInput) -> PlanRecord:
    integration_id = await _resolve_references(session, tenant_id, data)
    row = Plan(
        tenant_id=tenant_id,
        key=data.key,
        integration_name=data.integration_name or None,
        integration_id=integration_id,
        description=data.description,
        definition=data.definition,
        wait_seconds=data.wait_seconds,
        enabled=bool(data.enabled),
        auth_flow_id=data.auth_flow_id,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise translate_integrity_error(exc, duplicate=f"plan {data.key!r} already exists") from exc
    return _record(row)


async def get(session: AsyncSession, tenant_id: str, key: str) -> PlanRecord:
    return _record(await _row(session, tenant_id, key))


class PlanDocument(NamedTuple):
    """What GetPlan returns, read in one statement: the stored document as Postgres' JSON text
    (not decoded, so a caller can cache on it) and the server fields."""

    id: UUID
    created_at: datetime
    updated_at: datetime
    definition_json: str


# Built once: SQLAlchemy memoizes the statement's cache key, so each execution reuses the
# compiled SQL (and asyncpg its prepared statement).
_DOCUMENT_QUERY = select(Plan.id, Plan.created_at, Plan.updated_at, cast(Plan.definition, Text)).where(
    Plan.tenant_id == bindparam("tenant_id"), Plan.key == bindparam("key")
)


async def get_document(connection: AsyncConnection, tenant_id: str, key: str) -> PlanDocument | None:
    """GetPlan's read: one SELECT, no ORM; None when the tenant has no such plan (``get`` then
    tells not-found from another tenant's plan). The connection may be in autocommit mode."""
    result = await connection.execute(_DOCUMENT_QUERY, {"tenant_id": tenant_id, "key": key})
    row = result.first()
    return None if row is None else PlanDocument(*row)


async def get_by_id(session: AsyncSession, tenant_id: str, plan_id: UUID) -> PlanRecord:
    row = await session.scalar(select(Plan).where(Plan.tenant_id == tenant_id, Plan.id == plan_id))
    if row is None:
        await raise_missing(session, tenant_id, Plan.id, plan_id, "plan")
    return _record(row)


async def list_page(
    session: AsyncSession,
    tenant_id: str,
    *,
    integration_id: UUID | None = None,
    enabled: bool | None = None,
    size: int = 0,
    token: str = "",
) -> Page[PlanRecord]:
    """The tenant's plans ordered by key (keyset on key, which is unique per tenant)."""
    limit = page_size(size)
    query = select(Plan).where(Plan.tenant_id == tenant_id)
    if integration_id is not None:
        query = query.where(Plan.integration_id == integration_id)
    if enabled is not None:
        query = query.where(Plan.enabled == enabled)
    after = decode_token(token, [str])
    if after is not None:
        query = query.where(Plan.key > after[0])
    rows = list(await session.scalars(query.order_by(Plan.key).limit(limit + 1)))
    next_token = encode_token([rows[limit - 1].key]) if len(rows) > limit else ""
    return Page(tuple(_record(r) for r in rows[:limit]), next_token)


async def update_plan(session: AsyncSession, tenant_id: str, key: str, data: PlanInput) -> PlanRecord:
    """Replace the plan document. ``enabled=None`` keeps the current state (and keeps it in the
    stored document when the document carried it)."""
    row = await _row(session, tenant_id, key, lock=True)
    integration_id = await _resolve_references(session, tenant_id, data)
    definition = copy.deepcopy(data.definition)
    enabled = row.enabled if data.enabled is None else data.enabled
    if data.enabled is None and "enabled" in row.definition:
        definition["enabled"] = row.enabled
    updated = await session.scalar(
        update(Plan)
        .where(Plan.tenant_id == tenant_id, Plan.id == row.id)
        .values(
            integration_name=data.integration_name or None,
            integration_id=integration_id,
            description=data.description,
            definition=definition,
            wait_seconds=data.wait_seconds,
            enabled=enabled,
            auth_flow_id=data.auth_flow_id,
            updated_at=func.now(),
        )
        .returning(Plan)
        .execution_options(populate_existing=True)
    )
    assert updated is not None
    return _record(updated)


async def set_enabled(session: AsyncSession, tenant_id: str, key: str, enabled: bool) -> PlanRecord:
    row = await _row(session, tenant_id, key, lock=True)
    definition = dict(row.definition)
    definition["enabled"] = enabled
    updated = await session.scalar(
        update(Plan)
        .where(Plan.tenant_id == tenant_id, Plan.id == row.id)
        .values(enabled=enabled, definition=definition, updated_at=func.now())
        .returning(Plan)
        .execution_options(populate_existing=True)
    )
    assert updated is not None
    return _record(updated)


async def delete(session: AsyncSession, tenant_id: str, key: str) -> None:
    """Delete a plan. Its contexts go with it; executions and statistics are kept."""
    row = await _row(session, tenant_id, key, lock=True)
    await session.delete(row)
    await session.flush()


async def trigger_targets(
    session: AsyncSession, tenant_id: str, plan: PlanRecord, config_id: UUID | None
) -> list[UUID | None]:
    """The configs a manual run of ``plan`` uses: the one named (which must belong to the plan's
    integration), else every enabled config of the integration. A plan without an integration
    runs once without a config."""
    if config_id is not None:
        config = await session.scalar(
            select(Config).where(Config.tenant_id == tenant_id, Config.id == config_id)
        )
        if config is None:
            await raise_missing(session, tenant_id, Config.id, config_id, "config")
        if plan.integration_id is not None and config.integration_id != plan.integration_id:
            raise InvalidArgumentError(f"config_id: config {config_id} belongs to another integration")
        return [config_id]
    if plan.integration_id is None:
        return [None]
    ids = await session.scalars(
        select(Config.id)
        .where(Config.tenant_id == tenant_id, Config.integration_id == plan.integration_id, Config.enabled)
        .order_by(Config.name, Config.id)
    )
    targets: list[UUID | None] = list(ids)
    if not targets:
        raise PreconditionFailedError(f"plan {plan.key!r}: its integration has no enabled config to run with")
    return targets
