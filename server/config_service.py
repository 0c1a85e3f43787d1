"""orchid.v1.ConfigService. Secret values are encrypted by the repository and come back masked."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from orchid.v1 import configs_pb2, configs_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import config_input, config_to_proto, parse_uuid
from server.errors import maps_errors
from store import configs_repo
from store.crypto import SecretBox

Context = grpc.aio.ServicerContext[Any, Any]


class ConfigService(configs_pb2_grpc.ConfigServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], secrets: SecretBox) -> None:
        self._sessions = sessions
        self._secrets = secrets

    @maps_errors
    async def ListConfigs(
        self, request: configs_pb2.ListConfigsRequest, context: Context
    ) -> configs_pb2.ListConfigsResponse:
        tenant = current_caller().tenant_id
        integration_id = parse_uuid(request.integration_id, "integration_id")
        enabled = request.enabled if request.HasField("enabled") else None
        async with self._sessions.begin() as session:
            page = await configs_repo.list_page(
                session,
                tenant,
                integration_id,
                enabled=enabled,
                size=request.page_size,
                token=request.page_token,
            )
        return configs_pb2.ListConfigsResponse(
            configs=[config_to_proto(c) for c in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def CreateConfig(
        self, request: configs_pb2.CreateConfigRequest, context: Context
    ) -> configs_pb2.Config:
        tenant = current_caller().tenant_id
        data = config_input(request)
        async with self._sessions.begin() as session:
            record = await configs_repo.create(session, tenant, data, secrets=self._secrets)
        return config_to_proto(record)

    @maps_errors
    async def GetConfig(self, request: configs_pb2.GetConfigRequest, context: Context) -> configs_pb2.Config:
        tenant = current_caller().tenant_id
        config_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            record = await configs_repo.get(session, tenant, config_id)
        return config_to_proto(record)

    @maps_errors
    async def UpdateConfig(
        self, request: configs_pb2.UpdateConfigRequest, context: Context
    ) -> configs_pb2.Config:
        tenant = current_caller().tenant_id
        config_id = parse_uuid(request.id, "id")
        data = config_input(request)
        async with self._sessions.begin() as session:
            record = await configs_repo.update_config(session, tenant, config_id, data, secrets=self._secrets)
        return config_to_proto(record)

    @maps_errors
    async def DeleteConfig(
        self, request: configs_pb2.DeleteConfigRequest, context: Context
    ) -> empty_pb2.Empty:
        tenant = current_caller().tenant_id
        config_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            await configs_repo.delete(session, tenant, config_id)
        return empty_pb2.Empty()

    @maps_errors
    async def EnableConfig(
        self, request: configs_pb2.EnableConfigRequest, context: Context
    ) -> configs_pb2.Config:
        return await self._set_enabled(request.id, True)

    @maps_errors
    async def DisableConfig(
        self, request: configs_pb2.DisableConfigRequest, context: Context
    ) -> configs_pb2.Config:
        return await self._set_enabled(request.id, False)

    async def _set_enabled(self, raw_id: str, enabled: bool) -> configs_pb2.Config:
        tenant = current_caller().tenant_id
        config_id = parse_uuid(raw_id, "id")
        async with self._sessions.begin() as session:
            record = await configs_repo.set_enabled(session, tenant, config_id, enabled)
        return config_to_proto(record)
