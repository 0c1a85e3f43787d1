"""orchid.v1.ExecutionService."""

from __future__ import annotations

from typing import Any

import grpc
from orchid.v1 import executions_pb2, executions_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import execution_status, execution_to_proto, optional_uuid, parse_uuid
from server.errors import maps_errors
from server.ports import JobQueue
from store import executions_repo

Context = grpc.aio.ServicerContext[Any, Any]


class ExecutionService(executions_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue | None = None) -> None:
        self._sessions = sessions
        self._queue = queue

    @maps_errors
    async def ListExecutions(
        self, request: executions_pb2.ListExecutionsRequest, context: Context
    ) -> executions_pb2.ListExecutionsResponse:
        tenant = current_caller().tenant_id
        config_id = optional_uuid(request.config_id, "config_id")
        status = execution_status(request.status)
        async with self._sessions.begin() as session:
            page = await executions_repo.list_page(
                session,
                tenant,
                plan_key=request.plan_key or None,
                status=status,
                config_id=config_id,
                size=request.page_size,
                token=request.page_token,
            )
        return executions_pb2.ListExecutionsResponse(
            executions=[execution_to_proto(e) for e in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def GetExecution(
        self, request: executions_pb2.GetExecutionRequest, context: Context
    ) -> executions_pb2.Execution:
        tenant = current_caller().tenant_id
        execution_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            record = await executions_repo.get(session, tenant, execution_id)
        return execution_to_proto(record)

    @maps_errors
    async def ListExecutionChildren(
        self, request: executions_pb2.ListExecutionChildrenRequest, context: Context
    ) -> executions_pb2.ListExecutionChildrenResponse:
        tenant = current_caller().tenant_id
        parent_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            page = await executions_repo.list_children(
                session, tenant, parent_id, size=request.page_size, token=request.page_token
            )
        return executions_pb2.ListExecutionChildrenResponse(
            executions=[execution_to_proto(e) for e in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def CancelExecution(
        self, request: executions_pb2.CancelExecutionRequest, context: Context
    ) -> executions_pb2.Execution:
        tenant = current_caller().tenant_id
        execution_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            record = await executions_repo.cancel(session, tenant, execution_id, request.reason)
        if self._queue is not None:  # after commit: a worker that checks the row sees CANCELLED
            await self._queue.request_cancel(tenant, str(execution_id))
        return execution_to_proto(record)
