"""grpc.health.v1 and OpsService through Envoy need no token and report SERVING for the server
and for every orchid.v1 service. (The outage case is test_health_outage.py, run last.)"""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.envoy import ORCHID_SERVICES
from devstack.stack import Stack

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("service", ["", *ORCHID_SERVICES])
def test_grpc_health_check_without_token(stack: Stack, service: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports.envoy}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    assert reply.status == SERVING


def test_unknown_service_is_not_found(stack: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports.envoy}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(health_pb2.HealthCheckRequest(service="orchid.v1.NoSuchService"), timeout=10)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("path", ["/health", "/healthz", "/live"])
def test_rest_health_routes_without_token(stack: Stack, path: str) -> None:
    response = httpx.get(f"http://127.0.0.1:{stack.ports.envoy}{path}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "SERVING_STATUS_SERVING"


def test_health_exemption_is_exact(stack: Stack) -> None:
    """Only the health paths skip the token: a path that merely starts like one does not."""
    base = f"http://127.0.0.1:{stack.ports.envoy}"
    for path in ("/health/../api/v1/plans", "/healthz/x", "/api/v1/plans?x=/health"):
        response = httpx.get(base + path, timeout=10)
        assert response.status_code in {401, 404}, (path, response.status_code, response.text)
        assert response.status_code != 200
