"""The runtime refresh-token state of an auth flow, for the worker's AuthManager.

A refresh token is used at most once: ``claim`` moves ``token_version`` from v to v+1 (only if it
is still v) before the token is sent, and ``store_rotated`` writes the rotated token, encrypted,
only if the version is still v+1. Reads and the final compare-and-swap reuse
store.auth_flows_repo; this module adds the claim and wraps them as engine.auth_manager's
RefreshTokenStore.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.auth_manager import StoredRefreshToken
from store import auth_flows_repo
from store.crypto import SecretBox
from store.tables import AuthFlow

__all__ = ["PostgresRefreshTokenStore", "claim_version"]


async def claim_version(session: AsyncSession, tenant_id: str, flow_id: UUID, *, version: int) -> bool:
    """Move ``token_version`` from ``version`` to ``version + 1``; False when it is no longer
    ``version`` (someone else claimed or rotated meanwhile)."""
    result = await session.execute(
        update(AuthFlow)
        .where(AuthFlow.tenant_id == tenant_id, AuthFlow.id == flow_id, AuthFlow.token_version == version)
        .values(token_version=AuthFlow.token_version + 1)
        .returning(AuthFlow.id)
    )
    return result.first() is not None


class PostgresRefreshTokenStore:
    """RefreshTokenStore of one auth flow; each call is its own short transaction."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], secrets: SecretBox, *, tenant_id: str, flow_id: UUID
    ) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._tenant_id = tenant_id
        self._flow_id = flow_id

    async def load(self) -> StoredRefreshToken:
        async with self._sessions() as session:
            state = await auth_flows_repo.get_token_state(
                session, self._tenant_id, self._flow_id, secrets=self._secrets
            )
        return StoredRefreshToken(state.refresh_token, state.version)

    async def claim(self, version: int) -> bool:
        async with self._sessions.begin() as session:
            return await claim_version(session, self._tenant_id, self._flow_id, version=version)

    async def store_rotated(self, claimed_version: int, refresh_token: str) -> bool:
        async with self._sessions.begin() as session:
            return await auth_flows_repo.swap_refresh_token(
                session, self._tenant_id, self._flow_id, expected_version=claimed_version,
                refresh_token=refresh_token, secrets=self._secrets,
            )  # fmt: skip

    async def set_status(self, status: Literal["active", "broken"], message: str = "") -> None:
        async with self._sessions.begin() as session:
            await auth_flows_repo.set_status(session, self._tenant_id, self._flow_id, status, message)
