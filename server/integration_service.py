"""orchid.v1.IntegrationService."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from orchid.v1 import integrations_pb2, integrations_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import integration_input, integration_to_proto, parse_uuid
from server.errors import maps_errors
from store import integrations_repo

Context = grpc.aio.ServicerContext[Any, Any]


class IntegrationService(integrations_pb2_grpc.IntegrationServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @maps_errors
    async def ListIntegrations(
        self, request: integrations_pb2.ListIntegrationsRequest, context: Context
    ) -> integrations_pb2.ListIntegrationsResponse:
        tenant = current_caller().tenant_id
        async with self._sessions.begin() as session:
            page = await integrations_repo.list_page(
                session, tenant, size=request.page_size, token=request.page_token
            )
        return integrations_pb2.ListIntegrationsResponse(
            integrations=[integration_to_proto(i) for i in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def CreateIntegration(
        self, request: integrations_pb2.CreateIntegrationRequest, context: Context
    ) -> integrations_pb2.Integration:
        tenant = current_caller().tenant_id
        data = integration_input(request)
        async with self._sessions.begin() as session:
            record = await integrations_repo.create(session, tenant, data)
        return integration_to_proto(record)

    @maps_errors
    async def GetIntegration(
        self, request: integrations_pb2.GetIntegrationRequest, context: Context
    ) -> integrations_pb2.Integration:
        tenant = current_caller().tenant_id
        integration_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            record = await integrations_repo.get(session, tenant, integration_id)
        return integration_to_proto(record)

    @maps_errors
    async def UpdateIntegration(
        self, request: integrations_pb2.UpdateIntegrationRequest, context: Context
    ) -> integrations_pb2.Integration:
        tenant = current_caller().tenant_id
        integration_id = parse_uuid(request.id, "id")
        data = integration_input(request)
        async with self._sessions.begin() as session:
            record = await integrations_repo.update_integration(session, tenant, integration_id, data)
        return integration_to_proto(record)

    @maps_errors
    async def DeleteIntegration(
        self, request: integrations_pb2.DeleteIntegrationRequest, context: Context
    ) -> empty_pb2.Empty:
        tenant = current_caller().tenant_id
        integration_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            await integrations_repo.delete(session, tenant, integration_id)
        return empty_pb2.Empty()
