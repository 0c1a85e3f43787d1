"""Auth flows: how a token for an integration is obtained, plus its runtime token state.

The definition's secrets (``client_secret``, ``refresh_token``) are stored encrypted; reads for
the API mask them, ``load_for_run`` decrypts them for the worker. The runtime refresh token (the
one an OAuth server rotates in) lives in its own column and is swapped with compare-and-swap on
``token_version``, so two workers refreshing at once cannot both win.
"""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import InvalidArgumentError, PreconditionFailedError
from store.access import raise_missing, translate_integrity_error
from store.crypto import SecretBox, is_encrypted
from store.pagination import decode_token, encode_token, page_size
from store.records import AuthFlowInput, AuthFlowRecord, AuthFlowStatus, Page, TokenState
from store.schema_validation import MASK
from store.tables import AuthFlow, Config, Integration, Plan

__all__ = [
    "SECRET_FIELDS",
    "create",
    "delete",
    "ensure_usable",
    "get",
    "get_token_state",
    "list_page",
    "load_for_run",
    "set_status",
    "swap_refresh_token",
    "update_auth_flow",
]

SECRET_FIELDS = ("client_secret", "refresh_token")
Json = dict[str, Any]


def _masked(definition: Json) -> Json:
    out = copy.deepcopy(definition)
    for name in SECRET_FIELDS:
        if out.get(name):
            out[name] = MASK
    return out


def _record(row: AuthFlow, definition: Json | None = None) -> AuthFlowRecord:
    return AuthFlowRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        integration_id=row.integration_id,
        name=row.name,
        type=row.type,  # type: ignore[arg-type]
        definition=_masked(row.definition) if definition is None else definition,
        status=row.status,  # type: ignore[arg-type]
        status_message=row.status_message,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _sealed(definition: Json, stored: Json, secrets: SecretBox) -> Json:
    """Encrypt the secrets of ``definition``; an empty or masked secret keeps ``stored``'s value."""
    out = copy.deepcopy(definition)
    for name in SECRET_FIELDS:
        sent = out.get(name)
        if sent in (None, "", MASK):
            if stored.get(name):
                out[name] = stored[name]
            else:
                out.pop(name, None)
        elif not is_encrypted(sent):
            out[name] = secrets.encrypt(sent)
    return out


async def _row(session: AsyncSession, tenant_id: str, flow_id: UUID, *, lock: bool = False) -> AuthFlow:
    query = select(AuthFlow).where(AuthFlow.tenant_id == tenant_id, AuthFlow.id == flow_id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        await raise_missing(session, tenant_id, AuthFlow.id, flow_id, "auth flow")
    return row


async def _ensure_integration(session: AsyncSession, tenant_id: str, integration_id: UUID) -> None:
    found = await session.scalar(
        select(Integration.id).where(Integration.tenant_id == tenant_id, Integration.id == integration_id)
    )
    if found is None:
        await raise_missing(session, tenant_id, Integration.id, integration_id, "integration")


async def ensure_usable(
    session: AsyncSession, tenant_id: str, flow_id: UUID, integration_id: UUID | None
) -> None:
    """Check that a config or plan may refer to this auth flow: same tenant, same integration."""
    row = await _row(session, tenant_id, flow_id)
    if integration_id is not None and row.integration_id != integration_id:
        raise InvalidArgumentError(f"auth_flow_id: auth flow {flow_id} belongs to another integration")


async def create(
    session: AsyncSession, tenant_id: str, data: AuthFlowInput, *, secrets: SecretBox
) -> AuthFlowRecord:
    if data.integration_id is None:
        raise InvalidArgumentError("integration_id: required")
    await _ensure_integration(session, tenant_id, data.integration_id)
    row = AuthFlow(
        tenant_id=tenant_id,
        integration_id=data.integration_id,
        name=data.name,
        type=data.type,
        definition=_sealed(data.definition, {}, secrets),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise translate_integrity_error(
            exc, duplicate=f"auth flow {data.name!r} already exists for this integration"
        ) from exc
    return _record(row)


async def get(session: AsyncSession, tenant_id: str, flow_id: UUID) -> AuthFlowRecord:
    return _record(await _row(session, tenant_id, flow_id))


async def load_for_run(
    session: AsyncSession, tenant_id: str, flow_id: UUID, *, secrets: SecretBox
) -> AuthFlowRecord:
    """The auth flow with its secrets decrypted, for the worker. Never return this to a client."""
    row = await _row(session, tenant_id, flow_id)
    return _record(row, secrets.decrypt_tree(row.definition))


async def list_page(
    session: AsyncSession, tenant_id: str, integration_id: UUID, *, size: int = 0, token: str = ""
) -> Page[AuthFlowRecord]:
    """The auth flows of one integration ordered by name (keyset on (name, id))."""
    await _ensure_integration(session, tenant_id, integration_id)
    limit = page_size(size)
    query = select(AuthFlow).where(AuthFlow.tenant_id == tenant_id, AuthFlow.integration_id == integration_id)
    after = decode_token(token, [str, UUID])
    if after is not None:
        query = query.where(tuple_(AuthFlow.name, AuthFlow.id) > tuple_(*after))
    rows = list(await session.scalars(query.order_by(AuthFlow.name, AuthFlow.id).limit(limit + 1)))
    next_token = encode_token([rows[limit - 1].name, rows[limit - 1].id]) if len(rows) > limit else ""
    return Page(tuple(_record(r) for r in rows[:limit]), next_token)


async def update_auth_flow(
    session: AsyncSession, tenant_id: str, flow_id: UUID, data: AuthFlowInput, *, secrets: SecretBox
) -> AuthFlowRecord:
    """Replace the writable fields. Cached tokens are invalidated: the token version moves on,
    the runtime refresh token is dropped when a new one is sent, and the status goes back to
    unknown until the flow runs again."""
    row = await _row(session, tenant_id, flow_id, lock=True)
    if data.integration_id is not None and data.integration_id != row.integration_id:
        raise InvalidArgumentError("integration_id: immutable; it must be empty or equal to the stored value")
    definition = _sealed(data.definition, row.definition, secrets)
    new_refresh = definition.get("refresh_token") != row.definition.get("refresh_token")
    try:
        updated = await session.scalar(
            update(AuthFlow)
            .where(AuthFlow.tenant_id == tenant_id, AuthFlow.id == flow_id)
            .values(
                name=data.name,
                type=data.type,
                definition=definition,
                status="unknown",
                status_message="",
                refresh_token=None if new_refresh else AuthFlow.refresh_token,
                token_version=AuthFlow.token_version + 1,
                updated_at=func.now(),
            )
            .returning(AuthFlow)
            .execution_options(populate_existing=True)
        )
    except IntegrityError as exc:
        raise translate_integrity_error(
            exc, duplicate=f"auth flow {data.name!r} already exists for this integration"
        ) from exc
    assert updated is not None
    return _record(updated)


async def delete(session: AsyncSession, tenant_id: str, flow_id: UUID) -> None:
    """Delete an auth flow that no config or plan uses."""
    row = await _row(session, tenant_id, flow_id, lock=True)
    configs = await session.scalar(
        select(func.count()).where(Config.tenant_id == tenant_id, Config.auth_flow_id == flow_id)
    )
    plans = await session.scalar(
        select(func.count()).where(Plan.tenant_id == tenant_id, Plan.auth_flow_id == flow_id)
    )
    if configs or plans:
        raise PreconditionFailedError(
            f"auth flow {row.name!r} is still used by {configs or 0} config(s) and {plans or 0} plan(s)"
        )
    try:
        await session.delete(row)
        await session.flush()
    except IntegrityError as exc:
        raise translate_integrity_error(
            exc, duplicate="", in_use=f"auth flow {row.name!r} is still in use"
        ) from exc


# --- Runtime token state (worker) -------------------------------------------------------------


async def get_token_state(
    session: AsyncSession, tenant_id: str, flow_id: UUID, *, secrets: SecretBox
) -> TokenState:
    """The refresh token to use now: the rotated one if any, else the definition's."""
    row = await _row(session, tenant_id, flow_id)
    stored = row.refresh_token if row.refresh_token is not None else row.definition.get("refresh_token")
    value = secrets.decrypt(stored) if stored is not None else None
    return TokenState(refresh_token=str(value) if value is not None else None, version=row.token_version)


async def swap_refresh_token(
    session: AsyncSession,
    tenant_id: str,
    flow_id: UUID,
    *,
    expected_version: int,
    refresh_token: str,
    secrets: SecretBox,
) -> bool:
    """Store a rotated refresh token if nobody changed the state since ``expected_version``.
    Return False when another writer won (re-read the state and use theirs)."""
    result = await session.execute(
        update(AuthFlow)
        .where(
            AuthFlow.tenant_id == tenant_id,
            AuthFlow.id == flow_id,
            AuthFlow.token_version == expected_version,
        )
        .values(refresh_token=secrets.encrypt(refresh_token), token_version=AuthFlow.token_version + 1)
        .returning(AuthFlow.id)
    )
    return result.first() is not None


async def set_status(
    session: AsyncSession, tenant_id: str, flow_id: UUID, status: AuthFlowStatus, message: str = ""
) -> None:
    result = await session.execute(
        update(AuthFlow)
        .where(AuthFlow.tenant_id == tenant_id, AuthFlow.id == flow_id)
        .values(status=status, status_message=message)
        .returning(AuthFlow.id)
    )
    if result.first() is None:
        await raise_missing(session, tenant_id, AuthFlow.id, flow_id, "auth flow")
