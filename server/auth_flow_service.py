"""orchid.v1.AuthFlowService. client_secret and refresh_token are write-only."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from orchid.v1 import auth_flows_pb2, auth_flows_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import auth_flow_input, auth_flow_to_proto, parse_uuid
from server.errors import maps_errors
from store import auth_flows_repo
from store.crypto import SecretBox

Context = grpc.aio.ServicerContext[Any, Any]


class AuthFlowService(auth_flows_pb2_grpc.AuthFlowServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], secrets: SecretBox) -> None:
        self._sessions = sessions
        self._secrets = secrets

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
        return auth_flow_to_proto(record)

    @maps_errors
    async def DeleteAuthFlow(
        self, request: auth_flows_pb2.DeleteAuthFlowRequest, context: Context
    ) -> empty_pb2.Empty:
        tenant = current_caller().tenant_id
        flow_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            await auth_flows_repo.delete(session, tenant, flow_id)
        return empty_pb2.Empty()
