"""JSON log lines carry the caller's tenant and the RPC's trace id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from orchid.v1 import plans_pb2, plans_pb2_grpc

from server.auth import TenantAuthInterceptor
from server.logging_setup import ContextFilter, JsonFormatter, execution_id_var
from server.metrics import MetricsInterceptor
from server.tracing import tracing_interceptor
from tests.edge.support import running_server


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger("server.errors")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def test_log_lines_inside_an_rpc_carry_tenant_and_trace(captured: Capture) -> None:
    interceptors = [tracing_interceptor(TracerProvider()), MetricsInterceptor(), TenantAuthInterceptor()]
    async with (
        running_server(interceptors=interceptors) as (_, port, _r),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError):
            await plans_pb2_grpc.PlanServiceStub(channel).GetPlan(
                plans_pb2.GetPlanRequest(key="raise-bug"),
                metadata=(("x-orchid-tenant-id", "tn_123"),),
                timeout=5,
            )
    (line,) = captured.lines
    assert line["msg"] == "unhandled error in EchoPlans.GetPlan"
    assert line["level"] == "error" and line["tenant_id"] == "tn_123"
    assert isinstance(line["trace_id"], str) and len(line["trace_id"]) == 32
    assert "RuntimeError: secret internals" in str(line["exc"])


def test_log_lines_outside_an_rpc_have_no_context(captured: Capture) -> None:
    token = execution_id_var.set("ex_1")
    try:
        logging.getLogger("server.errors").warning("plain %s", "line", extra={"attempt": 2})
    finally:
        execution_id_var.reset(token)
    (line,) = captured.lines
    assert line["msg"] == "plain line" and line["execution_id"] == "ex_1" and line["attempt"] == 2
    assert "tenant_id" not in line and "trace_id" not in line
