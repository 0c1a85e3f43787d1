"""A test-only PlanService that reports who called it, and a helper that runs a real server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from orchid.v1 import ops_pb2_grpc, plans_pb2, plans_pb2_grpc

from engine import errors
from server.app import create_server
from server.auth import TenantAuthInterceptor, current_caller
from server.errors import maps_errors
from server.health import HealthReporter, OpsServicer
from server.metrics import MetricsInterceptor

# GetPlan(key="raise-<name>") raises this error, to test each row of the error table.
RAISE: dict[str, BaseException] = {
    "not-found": errors.ResourceNotFoundError("plan 'x' not found"),
    "duplicate": errors.DuplicateResourceError("plan 'x' already exists"),
    "tenant-mismatch": errors.TenantMismatchError("plan belongs to another tenant"),
    "permission": errors.PermissionDeniedError("operators only"),
    "precondition": errors.PreconditionFailedError("plan is disabled"),
    "invalid": errors.InvalidArgumentError("key: must not be empty"),
    "plan-invalid": errors.PlanValidationError(
        [
            errors.FieldError("step.url", "is required"),
            errors.FieldError("step.sub_steps[0].iterate_over", "bad"),
        ]
    ),
    "unauthenticated": errors.UnauthenticatedError("who are you"),
    "unavailable": errors.DependencyUnavailableError("redis is down"),
    "rate-limited": errors.RateLimitExceededError("too many requests", wait_s=3.0),
    "other-orchid": errors.TemplateError("secret internals"),
    "bug": RuntimeError("secret internals"),
}


class EchoPlans(plans_pb2_grpc.PlanServiceServicer):
    """GetPlan answers with the caller in the description; CreatePlan echoes the request."""

    @maps_errors
    async def GetPlan(self, request: plans_pb2.GetPlanRequest, context: Any) -> plans_pb2.Plan:
        caller = current_caller()
        if request.key.startswith("raise-"):
            raise RAISE[request.key.removeprefix("raise-")]
        whoami = {"tenant": caller.tenant_id, "roles": sorted(caller.roles), "admin": caller.is_admin}
        return plans_pb2.Plan(key=request.key, description=json.dumps(whoami))

    @maps_errors
    async def CreatePlan(self, request: plans_pb2.CreatePlanRequest, context: Any) -> plans_pb2.Plan:
        caller = current_caller()
        return plans_pb2.Plan(
            key=request.key,
            integration=request.integration,
            description=f"{caller.tenant_id}:{len(request.description)}",
        )


@contextlib.asynccontextmanager
async def running_server(
    *,
    listen: str = "127.0.0.1:0",
    reporter: HealthReporter | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,  # type: ignore[type-arg]
) -> AsyncIterator[tuple[grpc.aio.Server, int, HealthReporter]]:
    reporter = reporter or HealthReporter(version="test")
    server, port = create_server(
        (plans_pb2_grpc.add_PlanServiceServicer_to_server, EchoPlans()),  # type: ignore[abstract]
        (ops_pb2_grpc.add_OpsServiceServicer_to_server, OpsServicer(reporter)),
        listen=listen,
        interceptors=[MetricsInterceptor(), TenantAuthInterceptor()]
        if interceptors is None
        else interceptors,
        health=reporter,
    )
    await reporter.update([])  # no dependencies: serving
    await server.start()
    try:
        yield server, port, reporter
    finally:
        await server.stop(None)
