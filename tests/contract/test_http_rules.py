"""Every RPC has a google.api.http rule, and the route table is the product spec's."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from types import ModuleType

import pytest
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor

from .conftest import GEN_DIR
from .routes import SERVICES, expected_routes


def _pb2_modules() -> list[ModuleType]:
    names = sorted(p.stem for p in (GEN_DIR / "orchid" / "v1").glob("*_pb2.py"))
    return [importlib.import_module(f"orchid.v1.{name}") for name in names]


def _services() -> dict[str, descriptor.ServiceDescriptor]:
    return {
        name: svc for module in _pb2_modules() for name, svc in module.DESCRIPTOR.services_by_name.items()
    }


def _bindings(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    yield from rule.additional_bindings


def _verb_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    assert pattern and pattern != "custom", f"unexpected pattern {pattern}"
    return pattern.upper(), getattr(rule, pattern)


Route = tuple[str, str, str, str, http_pb2.HttpRule, descriptor.MethodDescriptor]


def _routes() -> list[Route]:
    found = []
    for service_name, service in _services().items():
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            for binding in _bindings(rule):
                if binding.WhichOneof("pattern") is None:
                    continue
                verb, path = _verb_path(binding)
                found.append((service_name, method.name, verb, path, binding, method))
    return found


def test_services_are_the_expected_ones() -> None:
    services = _services()
    assert sorted(services) == sorted(SERVICES)
    assert all(svc.full_name == f"orchid.v1.{name}" for name, svc in services.items())


def test_every_rpc_has_an_http_rule() -> None:
    missing = [
        f"{svc.name}.{method.name}"
        for svc in _services().values()
        for method in svc.methods
        if method.GetOptions().Extensions[annotations_pb2.http].WhichOneof("pattern") is None
    ]
    assert missing == []


def test_route_table_is_the_seed_table() -> None:
    actual = {(s, r, v, p) for s, r, v, p, _, _ in _routes()}
    expected = expected_routes()
    assert sorted(actual - expected) == [], "routes not in the expected table"
    assert sorted(expected - actual) == [], "expected routes missing from the protos"


def test_no_two_rpcs_share_a_route() -> None:
    seen = [(v, p) for _, _, v, p, _, _ in _routes()]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("route", _routes(), ids=lambda r: f"{r[2]} {r[3]}")
def test_body_and_path_params(route: Route) -> None:
    _, _, verb, path, rule, method = route
    if verb in {"POST", "PUT", "PATCH"}:
        assert rule.body == "*", "writes take the whole request message as JSON body"
    else:
        assert rule.body == "", "GET/DELETE carry everything in the path and query string"
    fields = method.input_type.fields_by_name
    for param in re.findall(r"\{([^}=]+)", path):
        assert param in fields, f"path parameter {param} is not a field of {method.input_type.name}"
        assert fields[param].type == descriptor.FieldDescriptor.TYPE_STRING
