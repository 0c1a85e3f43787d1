"""orchid.v1.DlqService. ``all_tenants`` is for callers with the admin role only."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2
from orchid.v1 import dlq_pb2, dlq_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import PermissionDeniedError
from server.auth import current_caller
from server.convert import dlq_entry_to_proto, dlq_reason, dlq_stats_to_proto, parse_uuid
from server.errors import maps_errors
from server.ports import JobQueue, enqueue_executions
from store import dlq_repo, executions_repo
from store.records import NewExecution

Context = grpc.aio.ServicerContext[Any, Any]


def _scope(all_tenants: bool) -> str | None:
    """The tenant to read, or None for every tenant (admins only)."""
    caller = current_caller()
    if not all_tenants:
        return caller.tenant_id
    if not caller.is_admin:
        raise PermissionDeniedError("all_tenants requires the admin role")
    return None


class DlqService(dlq_pb2_grpc.DlqServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue | None = None) -> None:
        self._sessions = sessions
        self._queue = queue

    @maps_errors
    async def ListDlqEntries(
        self, request: dlq_pb2.ListDlqEntriesRequest, context: Context
    ) -> dlq_pb2.ListDlqEntriesResponse:
        tenant = _scope(request.all_tenants)
        async with self._sessions.begin() as session:
            page = await dlq_repo.list_page(
                session,
                tenant,
                plan_key=request.plan_key or None,
                reason=dlq_reason(request.reason),
                size=request.count,
                token=request.page_token,
            )
        return dlq_pb2.ListDlqEntriesResponse(
            entries=[dlq_entry_to_proto(e) for e in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def GetDlqStats(self, request: dlq_pb2.GetDlqStatsRequest, context: Context) -> dlq_pb2.DlqStats:
        tenant = _scope(request.all_tenants)
        async with self._sessions.begin() as session:
            stats = await dlq_repo.stats(session, tenant)
        return dlq_stats_to_proto(stats)

    @maps_errors
    async def GetDlqEntry(self, request: dlq_pb2.GetDlqEntryRequest, context: Context) -> dlq_pb2.DlqEntry:
        tenant = current_caller().tenant_id
        entry_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            entry = await dlq_repo.get(session, tenant, entry_id)
        return dlq_entry_to_proto(entry)

    @maps_errors
    async def RetryDlqEntry(
        self, request: dlq_pb2.RetryDlqEntryRequest, context: Context
    ) -> dlq_pb2.RetryDlqEntryResponse:
        tenant = current_caller().tenant_id
        entry_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            entry = await dlq_repo.get(session, tenant, entry_id, lock=True)
            failed = await executions_repo.get(session, tenant, entry.execution_id)
            execution, _ = await executions_repo.create(
                session,
                tenant,
                NewExecution(
                    plan_key=failed.plan_key,
                    plan_id=failed.plan_id,
                    config_id=failed.config_id,
                    integration=failed.integration,
                    kind=failed.kind,
                    auth_flow_id=failed.auth_flow_id,
                    trigger="retry",
                    replay_of=failed.id,
                    trace_context=failed.trace_context,
                ),
            )
            await dlq_repo.mark_retried(session, tenant, entry.id, execution.id)
        await enqueue_executions(self._queue, self._sessions, [execution])  # after commit
        return dlq_pb2.RetryDlqEntryResponse(execution_id=str(execution.id))

    @maps_errors
    async def DeleteDlqEntry(
        self, request: dlq_pb2.DeleteDlqEntryRequest, context: Context
    ) -> empty_pb2.Empty:
        tenant = current_caller().tenant_id
        entry_id = parse_uuid(request.id, "id")
        async with self._sessions.begin() as session:
            await dlq_repo.delete(session, tenant, entry_id)
        return empty_pb2.Empty()
