"""The metrics endpoint counts requests by service, method and status code."""

from __future__ import annotations

import contextlib

import grpc
import httpx
from orchid.v1 import plans_pb2, plans_pb2_grpc

from server.metrics import start_metrics_server
from tests.edge.support import running_server


def sample(text: str, method: str, code: str, name: str = "orchid_grpc_requests_total") -> float:
    labels = f'{name}{{code="{code}",method="{method}",service="orchid.v1.PlanService"}}'
    for line in text.splitlines():
        if line.startswith(labels + " "):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_count_requests_by_method_and_code() -> None:
    metrics = start_metrics_server(0)
    try:
        async with (
            running_server() as (_, port, _r),
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics.port}", timeout=5) as http,
        ):
            before = (await http.get("/metrics")).text
            plans = plans_pb2_grpc.PlanServiceStub(channel)
            tenant = (("x-orchid-tenant-id", "tn_123"),)
            await plans.GetPlan(plans_pb2.GetPlanRequest(key="a"), metadata=tenant, timeout=5)
            await plans.GetPlan(plans_pb2.GetPlanRequest(key="b"), metadata=tenant, timeout=5)
            for key, metadata in (("raise-not-found", tenant), ("a", ())):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await plans.GetPlan(plans_pb2.GetPlanRequest(key=key), metadata=metadata, timeout=5)
            after = (await http.get("/metrics")).text
    finally:
        metrics.stop()

    def delta(code: str, name: str = "orchid_grpc_requests_total") -> float:
        return sample(after, "GetPlan", code, name) - sample(before, "GetPlan", code, name)

    assert delta("OK") == 2
    assert delta("NOT_FOUND") == 1
    assert delta("UNAUTHENTICATED") == 1  # auth failures are counted too
    assert delta("OK", "orchid_grpc_request_duration_seconds_count") == 2
