"""Every row of server/errors.py's table, through a real server and channel (STYLE 24)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import grpc
import pytest
import sqlalchemy.exc
from orchid.v1 import plans_pb2, plans_pb2_grpc

from engine import errors
from server.errors import STATUS_BY_ERROR, status_for
from tests.edge.support import RAISE, running_server

TENANT = (("x-orchid-tenant-id", "tn_123"),)

EXPECTED = {
    "not-found": grpc.StatusCode.NOT_FOUND,
    "duplicate": grpc.StatusCode.ALREADY_EXISTS,
    "tenant-mismatch": grpc.StatusCode.PERMISSION_DENIED,
    "permission": grpc.StatusCode.PERMISSION_DENIED,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "plan-invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "rate-limited": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "other-orchid": grpc.StatusCode.INTERNAL,
    "bug": grpc.StatusCode.INTERNAL,
}


@pytest.fixture
async def plans() -> AsyncIterator[plans_pb2_grpc.PlanServiceAsyncStub]:
    async with running_server() as (_, port, _r), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield plans_pb2_grpc.PlanServiceStub(channel)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_error_maps_to_status(plans: plans_pb2_grpc.PlanServiceAsyncStub, name: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await plans.GetPlan(plans_pb2.GetPlanRequest(key=f"raise-{name}"), metadata=TENANT, timeout=5)
    assert err.value.code() == EXPECTED[name]
    if EXPECTED[name] == grpc.StatusCode.INTERNAL:
        assert err.value.details() == "internal error"  # never the exception's text
    else:
        assert err.value.details() == str(RAISE[name])


async def test_plan_validation_message_lists_field_paths(plans: plans_pb2_grpc.PlanServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await plans.GetPlan(plans_pb2.GetPlanRequest(key="raise-plan-invalid"), metadata=TENANT, timeout=5)
    assert "step.url: is required" in (err.value.details() or "")
    assert "step.sub_steps[0].iterate_over: bad" in (err.value.details() or "")


def test_every_table_row_is_exercised() -> None:
    exercised = {type(RAISE[name]) for name in EXPECTED}
    assert set(STATUS_BY_ERROR) <= exercised


@pytest.mark.parametrize(
    "exc",
    [
        sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_database_connection_errors_are_unavailable(exc: BaseException) -> None:
    assert status_for(exc) == (grpc.StatusCode.UNAVAILABLE, "database unavailable")


def test_database_query_errors_are_internal() -> None:
    exc = sqlalchemy.exc.ProgrammingError("SELEC 1", {}, Exception("syntax error"))
    assert status_for(exc) == (grpc.StatusCode.INTERNAL, "internal error")


def test_subclass_maps_like_its_nearest_listed_ancestor() -> None:
    class StaleVersionError(errors.PreconditionFailedError):
        pass

    assert status_for(StaleVersionError("v2 != v3"))[0] == grpc.StatusCode.FAILED_PRECONDITION
