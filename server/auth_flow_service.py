"""orchid.v1.AuthFlowService. client_secret and refresh_token are write-only."""

from __future__ import annotations

import logging
import re
from typing import Any
from uuid import UUID

import grpc
from google.protobuf import empty_pb2
from orchid.v1 import auth_flows_pb2, auth_flows_pb2_grpc
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import auth_flow_input, auth_flow_to_proto, parse_uuid
from server.errors import maps_errors
from store import auth_flows_repo
from store.crypto import SecretBox

Context = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(value: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", value)


async def forget_cached_tokens(redis: Redis, tenant_id: str, flow_id: UUID) -> int:
    """Delete every config's cached token of the flow and its error/broken mark
    (``auth:{tenant}:{config}:{flow}`` and ``...:error``; engine.auth_manager), so the next run
    fetches a token with the flow's new definition. The refresh lock is left to its owner."""
    tenant, flow = _glob_escape(tenant_id), _glob_escape(str(flow_id))
    deleted = 0
    for pattern in (f"auth:{tenant}:*:{flow}", f"auth:{tenant}:*:{flow}:error"):
        keys = [key async for key in redis.scan_iter(match=pattern, count=500)]
        if keys:
            deleted += int(await redis.delete(*keys))
    return deleted


class AuthFlowService(auth_flows_pb2_grpc.AuthFlowServiceServicer):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], secrets: SecretBox, redis: Redis | None = None
    ) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._redis = redis

    async def _forget(self, tenant_id: str, flow_id: UUID) -> None:
        if self._redis is None:
            return
        try:
            await forget_cached_tokens(self._redis, tenant_id, flow_id)
        except (RedisError, OSError) as exc:  # the cached token expires by itself; do not fail the RPC
            log.warning("auth flow %s: cached tokens not invalidated: %s", flow_id, exc)

    @maps_errors
    async def ListAuthFlows(
        self, request: auth_flows_pb2.ListAuthFlowsRequest, context: Context
    ) -> auth_flows_pb2.ListAuthFlowsResponse:
        tenant = current_caller().tenant_id
        integration_id = parse_uuid(request.integration_id, "integration_id")
        async with self._sessions.begin() as session:
            page = await auth_flows_repo.list_page(
                session, tenant, integration_id, size=request.page_size, token=request.page_token
            )
        return auth_flows_pb2.ListAuthFlowsResponse(
            auth_flows=[auth_flow_to_proto(f) for f in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def CreateAuthFlow(
        self, request: auth_flows_pb2.CreateAuthFlowRequest, context: Context
    ) -> auth_flows_pb2.AuthFlow:
        tenant = current_caller().tenant_id
        data = auth_flow_input(request)
        async with self._sessions.begin() as session:
            record = await auth_flows_repo.create(session, tenant, data, secrets=self._secrets)
        return auth_flow_to_proto(record)

    @maps_errors
    async def GetAuthFlow(
        self, request: auth_flows_pb2.GetAuthFlowRequest, context: Context
    ) -> auth_flows_pb2.AuthFlow:
        tenant = current_caller().tenant_id
        flow_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            record = await auth_flows_repo.get(session, tenant, flow_id)
        return auth_flow_to_proto(record)

    @maps_errors
    async def UpdateAuthFlow(
        self, request: auth_flows_pb2.UpdateAuthFlowRequest, context: Context
    ) -> auth_flows_pb2.AuthFlow:
        tenant = current_caller().tenant_id
        flow_id = parse_uuid(request.id, "id")
        data = auth_flow_input(request)
        async with self._sessions.begin() as session:
            record = await auth_flows_repo.update_auth_flow(
                session, tenant, flow_id, data, secrets=self._secrets
            )
        await self._forget(tenant, flow_id)
        return auth_flow_to_proto(record)

    @maps_errors
    async def DeleteAuthFlow(
        self, request: auth_flows_pb2.DeleteAuthFlowRequest, context: Context
    ) -> empty_pb2.Empty:
        tenant = current_caller().tenant_id
        flow_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            await auth_flows_repo.delete(session, tenant, flow_id)
        await self._forget(tenant, flow_id)
        return empty_pb2.Empty()
