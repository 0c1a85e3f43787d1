"""The REST surface is the seed's route table, verb for verb, and covers every RPC: the table in
tests/e2e/api.py (written from the seed) matches the protos' services and the OpenAPI document,
and Envoy routes nothing else."""

from __future__ import annotations

import json

import httpx
import pytest

from devstack.envoy import ORCHID_SERVICES
from devstack.stack import REPO, Stack
from tests.e2e.api import MODULES, ROUTES, rest_result
from tests.e2e.conftest import Tokens

OPENAPI = REPO / "gen" / "openapi" / "orchid.v1.openapi.json"


def test_every_rpc_has_a_route() -> None:
    rpcs = set()
    for full_name in ORCHID_SERVICES:
        service = full_name.rpartition(".")[2]
        descriptor = MODULES[service].DESCRIPTOR.services_by_name[service]
        rpcs |= {f"{service}.{method.name}" for method in descriptor.methods}
    assert rpcs == set(ROUTES)


def test_routes_match_the_openapi_document() -> None:
    document = json.loads(OPENAPI.read_text())
    published = {
        operation["operationId"].removesuffix("_2"): (verb.upper(), path)
        for path, operations in document["paths"].items()
        for verb, operation in operations.items()
        if isinstance(operation, dict) and "operationId" in operation and path != "/healthz"
    }
    assert published == {rpc.replace(".", "_"): route for rpc, route in ROUTES.items()}


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("DELETE", "/api/v1/plans"),
        ("PATCH", "/api/v1/integrations/00000000-0000-0000-0000-000000000001"),
        ("POST", "/api/v1/plans/some-key/enable"),
        ("GET", "/api/v1/plans/some-key/trigger"),
        ("PUT", "/api/v1/dlq/00000000-0000-0000-0000-000000000001"),
        ("GET", "/api/v2/plans"),
    ],
)
def test_other_verbs_and_paths_are_not_routed(stack: Stack, tokens: Tokens, verb: str, path: str) -> None:
    response = httpx.request(
        verb, f"http://127.0.0.1:{stack.ports.envoy}{path}", headers={"authorization": f"Bearer {tokens.a}"}
    )
    assert response.status_code in {404, 405}, (verb, path, response.status_code, response.text)
    if response.status_code == 404:
        assert rest_result(path, response).body.get("code") == 5
