"""The betterproto2 SDK in gen/orchid_sdk imports and speaks the REST JSON."""

from __future__ import annotations

import json

import betterproto2
import grpc
import pytest

from .conftest import FIXTURES_DIR
from .routes import SERVICES


def test_sdk_exports_messages_and_stubs() -> None:
    from orchid_sdk.orchid import v1

    for service in SERVICES:
        stub = getattr(v1, f"{service}Stub")
        with grpc.insecure_channel("127.0.0.1:9") as channel:  # never connected
            stub(channel)
    for message in ("Plan", "Step", "Execution", "DlqEntry", "RateLimitState", "Statistic", "AuthFlow"):
        assert hasattr(v1, message)


@pytest.mark.parametrize("name", ["basic_plan.json", "fanout_plan.json"])
def test_sdk_round_trips_seed_plans(name: str) -> None:
    from orchid_sdk.orchid.v1 import CreatePlanRequest

    posted = json.loads((FIXTURES_DIR / name).read_text())
    request = CreatePlanRequest.from_dict(posted)
    assert request.to_dict(casing=betterproto2.Casing.SNAKE) == posted


def test_sdk_wire_compatible_with_pb2() -> None:
    from orchid.v1 import plans_pb2
    from orchid_sdk.orchid.v1 import Plan, Step

    sdk_plan = Plan(key="k", enabled=True, step=Step(url="u", while_="response.body.has_more"))
    pb2_plan = plans_pb2.Plan.FromString(bytes(sdk_plan))
    assert pb2_plan.key == "k" and pb2_plan.enabled is True
    assert getattr(pb2_plan.step, "while") == "response.body.has_more"
