"""The test harness of the server tests: a recording queue and the stubs of every service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass
class RecordingQueue:
    """Stands in for the Redis Streams queue (issue 4) behind server.ports.JobQueue."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[tuple[str, str]] = field(default_factory=list)

    async def enqueue(self, job: dict[str, Any]) -> str:
        self.jobs.append(job)
        return f"{len(self.jobs)}-0"

    async def request_cancel(self, tenant_id: str, execution_id: str) -> None:
        self.cancels.append((tenant_id, execution_id))


@dataclass
class Api:
    integrations: integrations_pb2_grpc.IntegrationServiceStub
    configs: configs_pb2_grpc.ConfigServiceStub
    auth_flows: auth_flows_pb2_grpc.AuthFlowServiceStub
    plans: plans_pb2_grpc.PlanServiceStub
    executions: executions_pb2_grpc.ExecutionServiceStub
    statistics: statistics_pb2_grpc.StatisticsServiceStub
    dlq: dlq_pb2_grpc.DlqServiceStub
    rate_limits: rate_limits_pb2_grpc.RateLimitServiceStub
    queue: RecordingQueue
    sessions: async_sessionmaker[AsyncSession]
