"""orchid.v1.RateLimitService: current budgets, their history and alerts, per tenant."""

from __future__ import annotations

from typing import Any

import grpc
from orchid.v1 import rate_limits_pb2, rate_limits_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import current_caller
from server.convert import (
    alert_severity,
    optional_datetime,
    optional_uuid,
    rate_limit_alert_to_proto,
    rate_limit_state_to_proto,
)
from server.errors import maps_errors
from store import rate_limits_repo

Context = grpc.aio.ServicerContext[Any, Any]


class RateLimitService(rate_limits_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @maps_errors
    async def ListRateLimitStates(
        self, request: rate_limits_pb2.ListRateLimitStatesRequest, context: Context
    ) -> rate_limits_pb2.ListRateLimitStatesResponse:
        tenant = current_caller().tenant_id
        config_id = optional_uuid(request.config_id, "config_id")
        async with self._sessions.begin() as session:
            page = await rate_limits_repo.latest_page(
                session, tenant, config_id=config_id, size=request.page_size, token=request.page_token
            )
        return rate_limits_pb2.ListRateLimitStatesResponse(
            states=[rate_limit_state_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def ListRateLimitHistory(
        self, request: rate_limits_pb2.ListRateLimitHistoryRequest, context: Context
    ) -> rate_limits_pb2.ListRateLimitHistoryResponse:
        tenant = current_caller().tenant_id
        config_id = optional_uuid(request.config_id, "config_id")
        async with self._sessions.begin() as session:
            page = await rate_limits_repo.history_page(
                session,
                tenant,
                config_id=config_id,
                endpoint=request.endpoint or None,
                since=optional_datetime(request, "since"),
                until=optional_datetime(request, "until"),
                size=request.page_size,
                token=request.page_token,
            )
        return rate_limits_pb2.ListRateLimitHistoryResponse(
            states=[rate_limit_state_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    @maps_errors
    async def ListRateLimitAlerts(
        self, request: rate_limits_pb2.ListRateLimitAlertsRequest, context: Context
    ) -> rate_limits_pb2.ListRateLimitAlertsResponse:
        tenant = current_caller().tenant_id
        config_id = optional_uuid(request.config_id, "config_id")
        async with self._sessions.begin() as session:
            page = await rate_limits_repo.list_alerts(
                session,
                tenant,
                open_only=request.open_only,
                config_id=config_id,
                severity=alert_severity(request.severity),
                size=request.page_size,
                token=request.page_token,
            )
        return rate_limits_pb2.ListRateLimitAlertsResponse(
            alerts=[rate_limit_alert_to_proto(a) for a in page.items], next_page_token=page.next_page_token
        )
