"""The real grpcurl binary, through Envoy: lists the services over reflection and calls GetPlan."""

from __future__ import annotations

import json
import subprocess

import httpx

from devstack.envoy import ORCHID_SERVICES
from devstack.servers import grpcurl_bin
from devstack.stack import Stack
from tests.e2e.api import unique
from tests.e2e.conftest import Tokens


def grpcurl(
    stack: Stack, *command: str, data: str | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """grpcurl [flags] <envoy> <command...>, e.g. ``list`` or ``orchid.v1.PlanService/GetPlan``."""
    flags = ["-plaintext", "-max-time", "20"]
    if token:
        flags += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        flags += ["-d", data]
    argv = [str(grpcurl_bin()), *flags, f"127.0.0.1:{stack.ports.envoy}", *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_grpcurl_lists_every_service(stack: Stack, tokens: Tokens) -> None:
    listed = grpcurl(stack, "list", token=tokens.a)
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert set(ORCHID_SERVICES) <= names
    assert "grpc.health.v1.Health" in names
    described = grpcurl(stack, "describe", "orchid.v1.PlanService", token=tokens.a)
    assert described.returncode == 0, described.stderr
    assert "rpc GetPlan" in described.stdout and "rpc TriggerPlan" in described.stdout


def test_grpcurl_calls_get_plan(stack: Stack, tokens: Tokens) -> None:
    key = unique("grpcurl-plan")
    headers = {"authorization": f"Bearer {tokens.a}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports.envoy}", headers=headers, timeout=20) as http:
        http.post(
            "/api/v1/plans", json={"key": key, "step": {"url": "http://127.0.0.1:9/x"}}
        ).raise_for_status()
    got = grpcurl(stack, "orchid.v1.PlanService/GetPlan", data=json.dumps({"key": key}), token=tokens.a)
    assert got.returncode == 0, got.stderr
    plan = json.loads(got.stdout)
    assert plan["key"] == key and plan["id"]
    assert plan["step"]["url"] == "http://127.0.0.1:9/x"

    other = grpcurl(stack, "orchid.v1.PlanService/GetPlan", data=json.dumps({"key": key}), token=tokens.b)
    assert other.returncode != 0
    assert "PermissionDenied" in other.stderr and "127.0.0.1:9/x" not in other.stdout + other.stderr


def test_grpcurl_without_token_is_refused(stack: Stack) -> None:
    listed = grpcurl(stack, "list")
    assert listed.returncode != 0
    assert "Unauthenticated" in listed.stderr or "401" in listed.stderr, listed.stderr
