"""Re-encrypt every stored secret with the first configured key (step 3 of the rotation
procedure in store/crypto.py)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.crypto import SecretBox
from store.tables import AuthFlow, Config

__all__ = ["rotate_secrets"]


async def rotate_secrets(session: AsyncSession, secrets: SecretBox) -> int:
    """Rewrite every ``{"$enc": ...}`` of every tenant with the first key; return how many values
    were rewritten. Rows are locked while they are rewritten; run it in one transaction."""
    rewritten = 0
    for row in await session.scalars(select(Config).with_for_update()):
        values, count = secrets.rotate_tree(row.values)
        if count:
            await session.execute(
                update(Config)
                .where(Config.tenant_id == row.tenant_id, Config.id == row.id)
                .values(values=values)
            )
            rewritten += count
    for flow in await session.scalars(select(AuthFlow).with_for_update()):
        definition, count = secrets.rotate_tree(flow.definition)
        refresh, refresh_count = secrets.rotate_tree(flow.refresh_token)
        if count or refresh_count:
            await session.execute(
                update(AuthFlow)
                .where(AuthFlow.tenant_id == flow.tenant_id, AuthFlow.id == flow.id)
                .values(definition=definition, refresh_token=refresh)
            )
            rewritten += count + refresh_count
    return rewritten
