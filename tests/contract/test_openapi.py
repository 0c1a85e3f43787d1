"""gen/openapi documents every REST route, with bearer auth except on the probes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import GEN_DIR
from .routes import PUBLIC_SERVICES, expected_routes


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GEN_DIR / "openapi" / "orchid.v1.openapi.json").read_text())
    return loaded


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(verb.upper(), path): op for path, item in document["paths"].items() for verb, op in item.items()}


def test_every_route_is_documented(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    expected = {(verb, path) for _, _, verb, path in expected_routes()}
    assert set(_operations(document)) == expected


def test_operations_name_their_rpc(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for service, rpc, verb, path in expected_routes():
        op_id = operations[(verb, path)]["operationId"]
        assert re.fullmatch(rf"{service}_{rpc}(_\d+)?", op_id), op_id


def test_security(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert document["security"] == [{"bearerAuth": []}]
    operations = _operations(document)
    for service, _, verb, path in expected_routes():
        public = operations[(verb, path)].get("security") == []
        assert public == (service in PUBLIC_SERVICES), f"{verb} {path}"


def test_parameters(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for (verb, path), op in operations.items():
        params = op.get("parameters", [])
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^}]+)\}", path)), f"{verb} {path}"
        assert ("requestBody" in op) == (verb in {"POST", "PUT", "PATCH"}), f"{verb} {path}"
    list_configs = operations[("GET", "/api/v1/configs")]
    query = {p["name"]: p for p in list_configs["parameters"] if p["in"] == "query"}
    assert query["integration_id"]["required"] is True
    assert {"page_size", "page_token", "enabled"} <= set(query)


def test_plan_schema_uses_snake_case(document: dict[str, Any]) -> None:
    step = document["components"]["schemas"]["orchid.v1.Step"]["properties"]
    assert {"while", "sub_steps", "iterate_over", "emit_to_kafka", "context_updates"} <= set(step)
    body = _operations(document)[("POST", "/api/v1/plans")]["requestBody"]["content"]["application/json"]
    assert {"key", "integration", "wait_seconds", "enabled", "step", "rate_limits"} <= set(
        body["schema"]["properties"]
    )


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document))
    assert refs and all(ref in schemas for ref in refs)
