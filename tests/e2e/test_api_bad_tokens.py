"""Every bad token is 401 over REST and UNAUTHENTICATED over gRPC, at Envoy or at the server,
for every kind of RPC; nothing is created by a rejected call."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from devstack.jwt import DevKey, DevKeyring, mint
from tests.e2e.api import list_all, unique
from tests.e2e.conftest import TENANT_A, Apis, Tokens

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(tokens: Tokens) -> str:
    claims = {
        "iss": "https://orchid.dev.local/",
        "aud": "orchid-api",
        "tenant_id": TENANT_A,
        "exp": time.time() + 600,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _stranger(tokens: Tokens, root: Path) -> str:
    """Signed by a key Envoy never saw, with the kid of a key it knows."""
    stranger = DevKeyring(root / "stranger")
    known_kid = tokens.keyring.signing_key.kid
    key = stranger.signing_key
    return mint(TENANT_A, key=DevKey(kid=known_kid, private_key=key.private_key))


BAD_TOKENS: dict[str, Callable[[Tokens, Path], str | None]] = {
    "no-token": lambda t, _: None,
    "garbage": lambda t, _: "not-a-jwt",
    "expired": lambda t, _: t.keyring.mint(TENANT_A, expires_in=-3600),
    "other-key": lambda t, root: DevKeyring(root / "other").mint(TENANT_A),
    "other-key-same-kid": _stranger,
    "alg-none": lambda t, _: _unsigned(t),
    "wrong-issuer": lambda t, _: t.keyring.mint(TENANT_A, issuer="https://evil.example/"),
    "wrong-audience": lambda t, _: t.keyring.mint(TENANT_A, audience="someone-else"),
    "no-tenant-claim": lambda t, _: t.keyring.mint(None),
    "empty-tenant-claim": lambda t, _: t.keyring.mint(None, claims_override={"tenant_id": ""}),
    "non-string-tenant-claim": lambda t, _: t.keyring.mint(None, claims_override={"tenant_id": 42}),
    "malformed-tenant-claim": lambda t, _: t.keyring.mint("../../tenant a"),
    "not-yet-valid": lambda t, _: t.keyring.mint(TENANT_A, claims_override={"nbf": int(time.time()) + 3600}),
}

RPCS: tuple[tuple[str, dict[str, str]], ...] = (
    ("PlanService.ListPlans", {}),
    ("PlanService.GetPlan", {"key": "salesforce-contacts"}),
    ("IntegrationService.CreateIntegration", {"name": "created-by-a-bad-token"}),
    ("ConfigService.ListConfigs", {"integration_id": "00000000-0000-0000-0000-000000000001"}),
    ("ExecutionService.ListExecutions", {}),
    ("DlqService.GetDlqStats", {}),
    ("RateLimitService.ListRateLimitAlerts", {}),
    ("StatisticsService.ListStatistics", {"plan_key": "x"}),
    ("AuthFlowService.ListAuthFlows", {"integration_id": "00000000-0000-0000-0000-000000000001"}),
)


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_token_is_unauthenticated(api: Apis, case: str, tmp_path: Path) -> None:
    token = BAD_TOKENS[case](api.tokens, tmp_path)
    caller = api.with_token(token)
    for rpc, request in RPCS:
        result = (await caller.call(rpc, request)).expect(UNAUTHENTICATED)
        if api.name == "rest":
            assert result.body.get("code") == 16, result.text
    names = {i["name"] for i in await list_all(api.a, "IntegrationService.ListIntegrations", "integrations")}
    assert "created-by-a-bad-token" not in names


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Token {token}", "bearer{token}"])
async def test_not_a_bearer_header(api: Apis, scheme: str) -> None:
    caller = api.with_token(None, headers={"authorization": scheme.format(token=api.tokens.a)})
    (await caller.call("PlanService.ListPlans")).expect(UNAUTHENTICATED)


async def test_good_tokens_pass(api: Apis) -> None:
    """The control: the same calls with valid tokens get past authentication."""
    for caller in (api.a, api.b, api.admin):
        (await caller.call("PlanService.ListPlans")).ok()
    created = await api.a.integration(name=unique("control"))
    assert created["name"].startswith("control-")
