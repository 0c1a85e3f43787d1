"""orchid.v1.PlanService. Plan documents are validated by engine.validate on create and update
and stored verbatim; TriggerPlan queues executions (and enqueues them when a queue is wired)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from orchid.v1 import plans_pb2, plans_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.errors import InvalidArgumentError
from server.auth import current_caller
from server.convert import optional_uuid, plan_document_to_proto, plan_input, plan_to_proto, required
from server.errors import maps_errors
from server.ports import JobQueue, enqueue_executions
from settings.model import ExecutionLimits
from store import executions_repo, plans_repo

Context = grpc.aio.ServicerContext[Any, Any]


class PlanService(plans_pb2_grpc.PlanServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limits: ExecutionLimits,
        queue: JobQueue | None = None,
    ) -> None:
        self._sessions = sessions
        self._limits = limits
        self._queue = queue
        # GetPlan reads one row: on an autocommit connection that is one round trip (no BEGIN /
        # COMMIT). Same pool as the sessions.
        bind = sessions.kw.get("bind")
        self._reader = (
            bind.execution_options(isolation_level="AUTOCOMMIT") if isinstance(bind, AsyncEngine) else None
        )

    @maps_errors
    async def ListPlans(
        self, request: plans_pb2.ListPlansRequest, context: Context
    ) -> plans_pb2.ListPlansResponse:
        tenant = current_caller().tenant_id
        integration_id = optional_uuid(request.integration_id, "integration_id")
        enabled = request.enabled if request.HasField("enabled") else None
        async with self._sessions.begin() as session:
            page = await plans_repo.list_page(
                session,
                tenant,
                integration_id=integration_id,
                enabled=enabled,
                size=request.page_size,
                token=request.page_token,
            )
        return plans_pb2.ListPlansResponse(
            plans=[plan_to_proto(p) for p in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def CreatePlan(self, request: plans_pb2.CreatePlanRequest, context: Context) -> plans_pb2.Plan:
        tenant = current_caller().tenant_id
        data = plan_input(request, self._limits)
        async with self._sessions.begin() as session:
            record = await plans_repo.create(session, tenant, data)
        return plan_to_proto(record)

    @maps_errors
    async def GetPlan(self, request: plans_pb2.GetPlanRequest, context: Context) -> plans_pb2.Plan:
        tenant = current_caller().tenant_id
        key = required(request.key, "key")
        if self._reader is not None:
            async with self._reader.connect() as connection:
                document = await plans_repo.get_document(connection, tenant, key)
            if document is not None:
                return plan_document_to_proto(*document)
        # Not found (or no engine to read from): the session path names the right error.
        async with self._sessions.begin() as session:
            record = await plans_repo.get(session, tenant, key)
        return plan_to_proto(record)

    @maps_errors
    async def UpdatePlan(self, request: plans_pb2.UpdatePlanRequest, context: Context) -> plans_pb2.Plan:
        tenant = current_caller().tenant_id
        key = required(request.key, "key")
        data = plan_input(request, self._limits)
        async with self._sessions.begin() as session:
            record = await plans_repo.update_plan(session, tenant, key, data)
        return plan_to_proto(record)

    @maps_errors
    async def DeletePlan(self, request: plans_pb2.DeletePlanRequest, context: Context) -> empty_pb2.Empty:
        tenant = current_caller().tenant_id
        key = required(request.key, "key")
        async with self._sessions.begin() as session:
            await plans_repo.delete(session, tenant, key)
        return empty_pb2.Empty()

    @maps_errors
    async def SetPlanEnabled(
        self, request: plans_pb2.SetPlanEnabledRequest, context: Context
    ) -> plans_pb2.Plan:
        tenant = current_caller().tenant_id
        key = required(request.key, "key")
        if not request.HasField("enabled"):
            raise InvalidArgumentError("enabled: required")
        async with self._sessions.begin() as session:
            record = await plans_repo.set_enabled(session, tenant, key, request.enabled)
        return plan_to_proto(record)

    @maps_errors
    async def TriggerPlan(
        self, request: plans_pb2.TriggerPlanRequest, context: Context
    ) -> plans_pb2.TriggerPlanResponse:
        tenant = current_caller().tenant_id
        key = required(request.key, "key")
        config_id = optional_uuid(request.config_id, "config_id")
        async with self._sessions.begin() as session:
            plan = await plans_repo.get(session, tenant, key)
            targets = await plans_repo.trigger_targets(session, tenant, plan, config_id)
            executions, deduplicated = await executions_repo.create_manual_runs(
                session, tenant, plan, targets, idempotency_key=request.idempotency_key or None
            )
        await enqueue_executions(self._queue, self._sessions, executions)  # after commit
        return plans_pb2.TriggerPlanResponse(
            execution_ids=[str(e.id) for e in executions], deduplicated=deduplicated
        )
