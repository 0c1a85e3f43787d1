"""The seed's two example plans, POSTed verbatim as REST clients write them (snake_case JSON),
come back from GET with the same fields and values, plus the server's id and timestamps.

Each test runs as a tenant of its own: the seed's keys are fixed, the tenants are not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from orchid.v1 import plans_pb2, plans_pb2_grpc

import devstack.__main__ as make_dev
from devstack.stack import Stack
from tests.e2e.api import to_json, unique

FIXTURES = Path(__file__).resolve().parent.parent / "contract" / "fixtures"
BASIC = FIXTURES / "basic_plan.json"
FANOUT = FIXTURES / "fanout_plan.json"
SERVER_FIELDS = {"id", "created_at", "updated_at"}


def same_posted_fields(posted: dict[str, Any], got: dict[str, Any]) -> None:
    """Every posted field is back with the same value; the rest are server fields."""
    assert {name: got.get(name) for name in posted} == posted
    assert set(got) - set(posted) <= SERVER_FIELDS, set(got) - set(posted)
    assert set(got) >= SERVER_FIELDS


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    tenant = unique("seed-tenant")
    headers = {"authorization": f"Bearer {stack.token(tenant)}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports.envoy}", headers=headers, timeout=20) as http:
        yield http


def test_make_dev_prints_the_seed_basic_plan() -> None:
    assert json.loads(BASIC.read_text()) == make_dev.BASIC_PLAN


def test_basic_plan_verbatim(client: httpx.Client) -> None:
    integration = client.post(
        "/api/v1/integrations", json={"name": "salesforce", "description": "Salesforce"}
    )
    assert integration.status_code == 200, integration.text
    raw = BASIC.read_bytes()
    created = client.post("/api/v1/plans", content=raw, headers={"content-type": "application/json"})
    assert created.status_code == 200, created.text
    posted = json.loads(raw)
    same_posted_fields(posted, created.json())
    got = client.get(f"/api/v1/plans/{posted['key']}")
    assert got.status_code == 200, got.text
    same_posted_fields(posted, got.json())
    assert got.json() == created.json()


def test_fanout_plan_verbatim_without_integration(client: httpx.Client) -> None:
    """The seed's fan-out example names no integration: it must be accepted as it is."""
    raw = FANOUT.read_bytes()
    posted = json.loads(raw)
    assert "integration" not in posted
    created = client.post("/api/v1/plans", content=raw, headers={"content-type": "application/json"})
    assert created.status_code == 200, created.text
    same_posted_fields(posted, created.json())
    got = client.get(f"/api/v1/plans/{posted['key']}")
    assert got.status_code == 200, got.text
    same_posted_fields(posted, got.json())
    listed = client.get("/api/v1/plans", params={"page_size": 500}).json()["plans"]
    assert [p["key"] for p in listed] == [posted["key"]]


def test_seed_plans_over_grpc_match_rest(stack: Stack, client: httpx.Client) -> None:
    """The same documents over native gRPC (through Envoy) read back identically over REST."""
    tenant = unique("seed-grpc")
    metadata = (("authorization", f"Bearer {stack.token(tenant)}"),)
    rest_headers = dict(metadata)
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports.envoy}") as channel:
        plans = plans_pb2_grpc.PlanServiceStub(channel)
        client.post(
            "/api/v1/integrations", json={"name": "salesforce"}, headers=rest_headers
        ).raise_for_status()
        for path in (BASIC, FANOUT):
            posted = json.loads(path.read_text())
            request = json_format.ParseDict(posted, plans_pb2.CreatePlanRequest())
            created = to_json(plans.CreatePlan(request, metadata=metadata, timeout=20))
            same_posted_fields(posted, created)
            got = to_json(
                plans.GetPlan(plans_pb2.GetPlanRequest(key=posted["key"]), metadata=metadata, timeout=20)
            )
            assert got == created
            over_rest = client.get(f"/api/v1/plans/{posted['key']}", headers=rest_headers)
            assert over_rest.json() == created


def test_put_back_what_get_returned(client: httpx.Client) -> None:
    """A REST client may PUT a GET body back as it is (server fields included) to change it."""
    posted = json.loads(FANOUT.read_text())
    client.post("/api/v1/plans", json=posted).raise_for_status()
    got = client.get(f"/api/v1/plans/{posted['key']}").json()
    put = client.put(f"/api/v1/plans/{posted['key']}", json={**got, "description": "changed"})
    assert put.status_code == 200, put.text
    assert put.json()["description"] == "changed" and put.json()["id"] == got["id"]
    same_posted_fields(posted, {k: v for k, v in put.json().items() if k != "description"})
    renamed = client.put(f"/api/v1/plans/{posted['key']}", json={**got, "key": "another-key"})
    assert renamed.status_code == 400, renamed.text
