"""Build every resource servicer of orchid.v1 with its collaborators.

    sessions = create_sessions(create_engine(settings.database))
    server, port = create_server(*build_servicers(sessions, settings, queue=queue), listen=...)

``queue`` (server.ports.JobQueue) is wired by the worker/scheduler issue; without it TriggerPlan
and RetryDlqEntry create QUEUED executions that the scheduler's sweep enqueues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from orchid.v1 import (
    auth_flows_pb2_grpc,
    configs_pb2_grpc,
    dlq_pb2_grpc,
    executions_pb2_grpc,
    integrations_pb2_grpc,
    plans_pb2_grpc,
    rate_limits_pb2_grpc,
    statistics_pb2_grpc,
)
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth_flow_service import AuthFlowService
from server.config_service import ConfigService
from server.dlq_service import DlqService
from server.execution_service import ExecutionService
from server.integration_service import IntegrationService
from server.plan_service import PlanService
from server.ports import JobQueue
from server.rate_limit_service import RateLimitService
from server.statistics_service import StatisticsService
from settings.model import Settings
from store.crypto import SecretBox

__all__ = ["build_servicers"]

AddToServer = Callable[[Any, grpc.aio.Server], None]


def build_servicers(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    queue: JobQueue | None = None,
    redis: Redis | None = None,
) -> list[tuple[AddToServer, object]]:
    """(add_XServicer_to_server, servicer) pairs for server.app.create_server. ``redis`` lets
    AuthFlowService drop a flow's cached tokens when the flow changes."""
    secrets = SecretBox.from_settings(settings.secrets)
    return [
        (integrations_pb2_grpc.add_IntegrationServiceServicer_to_server, IntegrationService(sessions)),
        (configs_pb2_grpc.add_ConfigServiceServicer_to_server, ConfigService(sessions, secrets)),
        (
            auth_flows_pb2_grpc.add_AuthFlowServiceServicer_to_server,
            AuthFlowService(sessions, secrets, redis),
        ),
        (plans_pb2_grpc.add_PlanServiceServicer_to_server, PlanService(sessions, settings.limits, queue)),
        (executions_pb2_grpc.add_ExecutionServiceServicer_to_server, ExecutionService(sessions, queue)),
        (statistics_pb2_grpc.add_StatisticsServiceServicer_to_server, StatisticsService(sessions)),
        (dlq_pb2_grpc.add_DlqServiceServicer_to_server, DlqService(sessions, queue)),
        (rate_limits_pb2_grpc.add_RateLimitServiceServicer_to_server, RateLimitService(sessions)),
    ]
