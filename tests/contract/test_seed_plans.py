"""The seed's example plans are valid CreatePlan bodies and read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, timestamp_pb2
from orchid.v1 import plans_pb2, steps_pb2

from .conftest import FIXTURES_DIR

SEED_PLANS = sorted(FIXTURES_DIR.glob("*_plan.json"))
SERVER_FIELDS = {"id", "created_at", "updated_at"}


def _envoy_json(message: Any) -> dict[str, Any]:
    """Print like Envoy's transcoder: proto field names, no default-valued fields."""
    printed: dict[str, Any] = json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))
    return printed


def _assert_contains(actual: Any, posted: Any, where: str = "$") -> None:
    """Every posted value is present in actual with the same value (actual may add keys)."""
    if isinstance(posted, dict):
        assert isinstance(actual, dict), where
        for key, value in posted.items():
            assert key in actual, f"{where}.{key} was dropped"
            _assert_contains(actual[key], value, f"{where}.{key}")
    elif isinstance(posted, list):
        assert isinstance(actual, list) and len(actual) == len(posted), where
        for i, (a, p) in enumerate(zip(actual, posted, strict=True)):
            _assert_contains(a, p, f"{where}[{i}]")
    else:
        assert actual == posted and type(actual) is type(posted), f"{where}: {actual!r} != {posted!r}"


def test_both_seed_examples_are_present() -> None:
    assert [p.name for p in SEED_PLANS] == ["basic_plan.json", "fanout_plan.json"]


@pytest.mark.parametrize("path", SEED_PLANS, ids=lambda p: p.stem)
def test_seed_plan_parses_as_create_request(path: Path) -> None:
    posted = json.loads(path.read_text())
    request = json_format.Parse(path.read_text(), plans_pb2.CreatePlanRequest(), ignore_unknown_fields=False)
    assert _envoy_json(request) == posted


@pytest.mark.parametrize("path", SEED_PLANS, ids=lambda p: p.stem)
def test_get_plan_returns_the_posted_document(path: Path) -> None:
    posted = json.loads(path.read_text())
    request = json_format.Parse(path.read_text(), plans_pb2.CreatePlanRequest())
    # CreatePlanRequest and Plan share field numbers: a stored request is a Plan.
    plan = plans_pb2.Plan.FromString(request.SerializeToString())
    plan.id = "0b6c7a52-3f1e-4c55-9d0e-2f5b1d2a7e11"
    plan.created_at.CopyFrom(timestamp_pb2.Timestamp(seconds=1_705_314_600))
    plan.updated_at.CopyFrom(plan.created_at)

    returned = _envoy_json(plan)
    _assert_contains(returned, posted)
    assert set(returned) - set(posted) == SERVER_FIELDS

    # PUT-ing the GET response back is accepted as it is.
    update = json_format.Parse(json.dumps(returned), plans_pb2.UpdatePlanRequest())
    assert _envoy_json(update) == returned


def test_explicit_defaults_round_trip() -> None:
    """`optional` fields keep explicit false/0 values that clients posted."""
    posted = {"key": "k", "enabled": False, "wait_seconds": 0, "step": {"url": "u", "emit_to_kafka": False}}
    request = json_format.ParseDict(posted, plans_pb2.CreatePlanRequest())
    assert _envoy_json(request) == posted


def test_while_field_is_reachable() -> None:
    # `while` is a Python keyword: mypy-protobuf leaves it out of the typed constructor,
    # so typed code sets it with setattr (or parses JSON).
    step = steps_pb2.Step(url="u")
    setattr(step, "while", "response.body.has_more == true")
    assert getattr(step, "while") == "response.body.has_more == true"
    assert _envoy_json(step) == {"url": "u", "while": "response.body.has_more == true"}
