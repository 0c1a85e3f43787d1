"""orchid.v1.StatisticsService."""

from __future__ import annotations

from typing import Any

import grpc
from orchid.v1 import statistics_pb2, statistics_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import parse_uuid, required, statistic_to_proto
from server.errors import maps_errors
from store import statistics_repo

Context = grpc.aio.ServicerContext[Any, Any]


class StatisticsService(statistics_pb2_grpc.StatisticsServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @maps_errors
    async def ListStatistics(
        self, request: statistics_pb2.ListStatisticsRequest, context: Context
    ) -> statistics_pb2.ListStatisticsResponse:
        tenant = current_caller().tenant_id
        plan_key = required(request.plan_key, "plan_key")
        async with self._sessions.begin() as session:
            page = await statistics_repo.list_page(
                session, tenant, plan_key, size=request.page_size, token=request.page_token
            )
        return statistics_pb2.ListStatisticsResponse(
            statistics=[statistic_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def GetStatistic(
        self, request: statistics_pb2.GetStatisticRequest, context: Context
    ) -> statistics_pb2.Statistic:
        tenant = current_caller().tenant_id
        plan_key = required(request.plan_key, "plan_key")
        config_id = parse_uuid(request.config_id, "config_id")
        async with self._sessions.begin() as session:
            record = await statistics_repo.get(session, tenant, plan_key, config_id)
        return statistic_to_proto(record)
