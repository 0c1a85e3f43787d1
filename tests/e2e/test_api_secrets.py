"""Secrets go in and never come back: config values marked secret by the integration's
config_schema, and an auth flow's client_secret and refresh_token, on every read path of
both transports (create, get, list, update, enable/disable) and in error messages."""

from __future__ import annotations

import uuid

import grpc

from tests.e2e.api import Json, Result, list_all, unique
from tests.e2e.conftest import Apis

MASK = "********"
SCHEMA = {
    "type": "object",
    "properties": {
        "base_url": {"type": "string"},
        "api_key": {"type": "string", "secret": True, "minLength": 20},
        "oauth": {"type": "object", "properties": {"password": {"type": "string", "writeOnly": True}}},
    },
    "required": ["base_url"],
}


def hidden(result: Result, *secrets: str) -> Json:
    body = result.ok()
    for secret in secrets:
        assert secret not in result.text, f"{result.transport} {result.rpc} returned a secret: {result.text}"
    return body


async def test_config_secrets_never_come_back(api: Apis) -> None:
    a = api.a
    api_key = f"plaintext-api-key-{uuid.uuid4().hex}"
    password = f"plaintext-password-{uuid.uuid4().hex}"
    integration = await a.integration(config_schema=SCHEMA)
    values = {"base_url": "http://127.0.0.1:9", "api_key": api_key, "oauth": {"password": password}}
    created = await a.call(
        "ConfigService.CreateConfig", integration_id=integration["id"], name=unique("c"), values=values
    )
    body = hidden(created, api_key, password)
    assert body["values"] == {"base_url": "http://127.0.0.1:9", "api_key": MASK, "oauth": {"password": MASK}}
    config_id = body["id"]

    hidden(await a.call("ConfigService.GetConfig", id=config_id), api_key, password)
    listed = await a.call("ConfigService.ListConfigs", integration_id=integration["id"])
    assert [c["id"] for c in hidden(listed, api_key, password)["configs"]] == [config_id]
    hidden(await a.call("ConfigService.DisableConfig", id=config_id), api_key, password)
    hidden(await a.call("ConfigService.EnableConfig", id=config_id), api_key, password)

    # Sending the mask back keeps the stored secret; a new plaintext replaces it, unseen.
    kept = await a.call(
        "ConfigService.UpdateConfig",
        id=config_id,
        name=body["name"],
        values={**body["values"], "base_url": "http://x"},
    )
    assert hidden(kept, api_key, password)["values"]["api_key"] == MASK
    new_key = f"plaintext-new-key-{uuid.uuid4().hex}"
    replaced = await a.call(
        "ConfigService.UpdateConfig",
        id=config_id,
        name=body["name"],
        values={"base_url": "http://x", "api_key": new_key, "oauth": {"password": password}},
    )
    assert hidden(replaced, api_key, password, new_key)["values"]["api_key"] == MASK
    for config in await list_all(a, "ConfigService.ListConfigs", "configs", integration_id=integration["id"]):
        assert api_key not in str(config) and new_key not in str(config)

    # A secret that breaks the schema is refused without quoting it.
    short = f"s-{uuid.uuid4().hex[:8]}"
    refused = await a.call(
        "ConfigService.CreateConfig",
        integration_id=integration["id"],
        name=unique("c"),
        values={"base_url": "http://x", "api_key": short},
    )
    refused.expect(grpc.StatusCode.INVALID_ARGUMENT)
    assert short not in refused.text and "api_key" in refused.message


async def test_auth_flow_secrets_never_come_back(api: Apis) -> None:
    a = api.a
    client_secret = f"plaintext-client-secret-{uuid.uuid4().hex}"
    refresh_token = f"plaintext-refresh-token-{uuid.uuid4().hex}"
    integration = await a.integration()
    request = {
        "integration_id": integration["id"],
        "name": unique("flow"),
        "type": "AUTH_FLOW_TYPE_OAUTH2_REFRESH_TOKEN",
        "token_url": "http://127.0.0.1:9/token",
        "client_id": "e2e",
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    created = hidden(await a.call("AuthFlowService.CreateAuthFlow", request), client_secret, refresh_token)
    flow_id = created["id"]
    hidden(await a.call("AuthFlowService.GetAuthFlow", id=flow_id), client_secret, refresh_token)
    hidden(
        await a.call("AuthFlowService.ListAuthFlows", integration_id=integration["id"]),
        client_secret,
        refresh_token,
    )
    update = {**request, "id": flow_id, "client_secret": f"new-{client_secret}"}
    hidden(await a.call("AuthFlowService.UpdateAuthFlow", update), client_secret, refresh_token)
