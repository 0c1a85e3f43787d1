"""Configs: a tenant's credentials and settings for one integration.

Values are validated against the integration's ``config_schema``; the properties it marks secret
are stored as ``{"$enc": ...}`` and come back masked. ``load_for_run`` decrypts them for the
worker.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import InvalidArgumentError
from store import auth_flows_repo
from store.access import raise_missing, translate_integrity_error
from store.crypto import SecretBox, is_encrypted
from store.pagination import decode_token, encode_token, page_size
from store.records import ConfigInput, ConfigRecord, Page
from store.schema_validation import (
    MASK,
    mask_secrets,
    merge_kept_secrets,
    secret_paths,
    transform_secrets,
    validate_values,
)
from store.tables import Config, Integration

__all__ = [
    "create",
    "delete",
    "get",
    "list_enabled_for_integration",
    "list_page",
    "load_for_run",
    "set_enabled",
    "update_config",
]

Json = dict[str, Any]


def _mask_encrypted(document: Any) -> Any:
    """Mask every encrypted node, whatever today's schema says."""
    if is_encrypted(document):
        return MASK
    if isinstance(document, dict):
        return {key: _mask_encrypted(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_mask_encrypted(value) for value in document]
    return document


def _record(row: Config, schema: Json | None, values: Json | None = None) -> ConfigRecord:
    if values is None:
        values = mask_secrets(_mask_encrypted(row.values), secret_paths(schema))
    return ConfigRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        integration_id=row.integration_id,
        name=row.name,
        values=values,
        enabled=row.enabled,
        auth_flow_id=row.auth_flow_id,
        rate_limit_headers=row.rate_limit_headers,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _schema(session: AsyncSession, tenant_id: str, integration_id: UUID) -> Json | None:
    row = await session.execute(
        select(Integration.config_schema).where(
            Integration.tenant_id == tenant_id, Integration.id == integration_id
        )
    )
    found = row.first()
    if found is None:
        await raise_missing(session, tenant_id, Integration.id, integration_id, "integration")
    schema: Json | None = found[0]
    return schema


async def _row(session: AsyncSession, tenant_id: str, config_id: UUID, *, lock: bool = False) -> Config:
    query = select(Config).where(Config.tenant_id == tenant_id, Config.id == config_id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        await raise_missing(session, tenant_id, Config.id, config_id, "config")
    return row


def _seal(schema: Json | None, plaintext: Json, secrets: SecretBox) -> Json:
    validate_values(schema, plaintext)
    return transform_secrets(plaintext, secret_paths(schema), secrets.encrypt)


def _duplicate(name: str) -> str:
    return f"config {name!r} already exists for this integration"


async def create(
    session: AsyncSession, tenant_id: str, data: ConfigInput, *, secrets: SecretBox
) -> ConfigRecord:
    if data.integration_id is None:
        raise InvalidArgumentError("integration_id: required")
    schema = await _schema(session, tenant_id, data.integration_id)
    if data.auth_flow_id is not None:
        await auth_flows_repo.ensure_usable(session, tenant_id, data.auth_flow_id, data.integration_id)
    plaintext = merge_kept_secrets(data.values, {}, secret_paths(schema))  # a bare mask means "absent"
    row = Config(
        tenant_id=tenant_id,
        integration_id=data.integration_id,
        name=data.name,
        values=_seal(schema, plaintext, secrets),
        enabled=True if data.enabled is None else data.enabled,
        auth_flow_id=data.auth_flow_id,
        rate_limit_headers=data.rate_limit_headers,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise translate_integrity_error(exc, duplicate=_duplicate(data.name)) from exc
    return _record(row, schema)


async def get(session: AsyncSession, tenant_id: str, config_id: UUID) -> ConfigRecord:
    row = await _row(session, tenant_id, config_id)
    return _record(row, await _schema(session, tenant_id, row.integration_id))


async def load_for_run(
    session: AsyncSession, tenant_id: str, config_id: UUID, *, secrets: SecretBox
) -> ConfigRecord:
    """The config with its secrets decrypted, for the worker. Never return this to a client."""
    row = await _row(session, tenant_id, config_id)
    return _record(row, None, secrets.decrypt_tree(row.values))


async def list_page(
    session: AsyncSession,
    tenant_id: str,
    integration_id: UUID,
    *,
    enabled: bool | None = None,
    size: int = 0,
    token: str = "",
) -> Page[ConfigRecord]:
    """The configs of one integration ordered by name (keyset on (name, id)), secrets masked."""
    schema = await _schema(session, tenant_id, integration_id)
    limit = page_size(size)
    query = select(Config).where(Config.tenant_id == tenant_id, Config.integration_id == integration_id)
    if enabled is not None:
        query = query.where(Config.enabled == enabled)
    after = decode_token(token, [str, UUID])
    if after is not None:
        query = query.where(tuple_(Config.name, Config.id) > tuple_(*after))
    rows = list(await session.scalars(query.order_by(Config.name, Config.id).limit(limit + 1)))
    next_token = encode_token([rows[limit - 1].name, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(_record(r, schema) for r in rows[:limit]), next_token)


async def list_enabled_for_integration(
    session: AsyncSession, tenant_id: str, integration_id: UUID
) -> list[UUID]:
    """Ids of the enabled configs of an integration, for triggers and the scheduler."""
    ids = await session.scalars(
        select(Config.id)
        .where(Config.tenant_id == tenant_id, Config.integration_id == integration_id, Config.enabled)
        .order_by(Config.name, Config.id)
    )
    return list(ids)


async def update_config(
    session: AsyncSession, tenant_id: str, config_id: UUID, data: ConfigInput, *, secrets: SecretBox
) -> ConfigRecord:
    """Replace the writable fields. A secret that is absent or equal to the mask keeps its stored
    value; the merged values are validated again."""
    row = await _row(session, tenant_id, config_id, lock=True)
    if data.integration_id is not None and data.integration_id != row.integration_id:
        raise InvalidArgumentError("integration_id: immutable; it must be empty or equal to the stored value")
    schema = await _schema(session, tenant_id, row.integration_id)
    if data.auth_flow_id is not None:
        await auth_flows_repo.ensure_usable(session, tenant_id, data.auth_flow_id, row.integration_id)
    merged = merge_kept_secrets(data.values, row.values, secret_paths(schema))
    values = _seal(schema, secrets.decrypt_tree(merged), secrets)
    try:
        updated = await session.scalar(
            update(Config)
            .where(Config.tenant_id == tenant_id, Config.id == config_id)
            .values(
                name=data.name,
                values=values,
                enabled=row.enabled if data.enabled is None else data.enabled,
                auth_flow_id=data.auth_flow_id,
                rate_limit_headers=data.rate_limit_headers,
                updated_at=func.now(),
            )
            .returning(Config)
            .execution_options(populate_existing=True)
        )
    except IntegrityError as exc:
        raise translate_integrity_error(exc, duplicate=_duplicate(data.name)) from exc
    assert updated is not None
    return _record(updated, schema)


async def set_enabled(session: AsyncSession, tenant_id: str, config_id: UUID, enabled: bool) -> ConfigRecord:
    row = await session.scalar(
        update(Config)
        .where(Config.tenant_id == tenant_id, Config.id == config_id)
        .values(enabled=enabled, updated_at=func.now())
        .returning(Config)
        .execution_options(populate_existing=True)
    )
    if row is None:
        await raise_missing(session, tenant_id, Config.id, config_id, "config")
    return _record(row, await _schema(session, tenant_id, row.integration_id))


async def delete(session: AsyncSession, tenant_id: str, config_id: UUID) -> None:
    """Delete a config. Its plan contexts go with it; executions and statistics are kept."""
    row = await _row(session, tenant_id, config_id, lock=True)
    await session.delete(row)
    await session.flush()
