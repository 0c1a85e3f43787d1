"""Health turns NOT_SERVING while Postgres is stopped and SERVING after it restarts, over REST
(/health through Envoy) and grpc.health.v1 (through Envoy); RPCs fail UNAVAILABLE meanwhile,
never INTERNAL, and work again afterwards.

Marked e2e_last: the conftest runs it after every other e2e test, so none sees the outage.
"""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from orchid.v1 import plans_pb2, plans_pb2_grpc, steps_pb2

from devstack.process import wait_until
from devstack.stack import Stack
from tests.e2e.api import rest_result, unique
from tests.e2e.conftest import Tokens

pytestmark = pytest.mark.e2e_last

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_follows_postgres(stack: Stack, tokens: Tokens) -> None:
    auth = (("authorization", f"Bearer {tokens.a}"),)
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{stack.ports.envoy}", timeout=10) as http,
        grpc.insecure_channel(f"127.0.0.1:{stack.ports.envoy}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        plans = plans_pb2_grpc.PlanServiceStub(channel)

        def grpc_status(service: str = "") -> int:
            return int(health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)

        assert http.get("/health").status_code == 200
        assert grpc_status() == SERVING

        stack.postgres.stop()
        try:
            wait_until(lambda: grpc_status() == NOT_SERVING, timeout_s=15, what="gRPC health NOT_SERVING")
            assert grpc_status("orchid.v1.PlanService") == NOT_SERVING
            down = http.get("/health")
            assert down.status_code == 503, down.text
            assert rest_result("OpsService.Health", down).code is grpc.StatusCode.UNAVAILABLE
            assert "database" in down.json()["message"]
            assert http.get("/live").status_code == 200  # alive, just not ready

            listed = http.get("/api/v1/plans", headers=dict(auth))
            rest_result("PlanService.ListPlans", listed).expect(grpc.StatusCode.UNAVAILABLE)
            with pytest.raises(grpc.RpcError) as caught:
                plans.ListPlans(plans_pb2.ListPlansRequest(), metadata=auth, timeout=15)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, caught.value
        finally:
            stack.postgres.start()

        wait_until(lambda: grpc_status() == SERVING, timeout_s=30, what="gRPC health SERVING again")
        assert grpc_status("orchid.v1.PlanService") == SERVING
        wait_until(lambda: http.get("/health").status_code == 200, timeout_s=10, what="/health 200 again")
        key = unique("after-outage")
        created = plans.CreatePlan(
            plans_pb2.CreatePlanRequest(key=key, step=steps_pb2.Step(url="http://127.0.0.1:9/x")),
            metadata=auth,
            timeout=15,
        )
        assert created.key == key
        assert http.get(f"/api/v1/plans/{key}", headers=dict(auth)).json()["id"] == created.id


def test_server_logged_no_internal_errors(stack: Stack) -> None:
    """After the whole e2e run (outage included), the server never hit an unmapped error:
    every failure was a mapped status (UNAVAILABLE during the outage), never INTERNAL."""
    log = (stack.root / "server.log").read_text(errors="replace")
    assert "orchid server listening" in log  # the right log, and it is written
    assert "unhandled error" not in log, log[-5000:]
    assert "Traceback" not in log, log[-5000:]
