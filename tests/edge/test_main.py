"""`python -m server` as a process: migrations, health from Postgres and Redis, metrics, JSON logs,
SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.process import free_port, port_open, wait_until
from devstack.servers import Postgres, Redis

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_python_m_server_serves_and_stops_on_sigterm(
    edge_postgres: Postgres, redis_server: Redis, tmp_path: Path
) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **edge_postgres.env(),
        **redis_server.env(),
        "GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "SERVER_METRICS_PORT": str(metrics_port),
        "RUN_MIGRATIONS": "true",
        "SHUTDOWN_GRACE": "2s",
        "LOG_LEVEL": "info",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=REPO, env=env, stdout=log, stderr=log
        )
    try:
        wait_until(
            lambda: process.poll() is None and port_open(grpc_port), timeout_s=30, what="server", log=log_path
        )
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="orchid.v1.OpsService"), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'orchid_grpc_requests_total{code="OK",method="Check",service="grpc.health.v1.Health"}' in text

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert any(m.startswith("orchid server listening on port") for m in messages), log_path.read_text()
    assert "stopped" in messages
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
