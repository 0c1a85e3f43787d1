"""AuthManager against real Redis, the mock API's OAuth server and (for rotation) real Postgres."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.auth_flows import AuthFlowBrokenError, AuthFlowError
from engine.auth_manager import AuthFlowBrokenEvent, AuthManager, AuthRun, auth_key
from engine.http_caller import AiohttpCaller, build_http_caller
from mockapi import MockApi
from mockapi import json as json_response
from settings.model import EgressSettings, ExecutionLimits
from store import auth_flows_repo, integrations_repo
from store.auth_flow_state_repo import PostgresRefreshTokenStore
from store.crypto import SecretBox, generate_key, is_encrypted
from store.records import AuthFlowInput, IntegrationInput
from store.tables import AuthFlow

pytestmark = pytest.mark.stack

CC = {
    "token_url": "{config.base_url}/oauth/token",
    "client_id": "orchid-client",
    "client_secret": "{config.secret}",
}


@pytest.fixture
async def http() -> AsyncIterator[AiohttpCaller]:
    async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.1",))) as caller:
        yield caller


@pytest.fixture
async def api() -> AsyncIterator[MockApi]:
    async with MockApi() as mock:
        yield mock


def manager(redis: Redis, http: AiohttpCaller, api: MockApi, **options) -> AuthManager:
    settings: dict[str, Any] = {
        "tenant_id": "t1",
        "config_id": "c1",
        "flow_id": "f1",
        "flow_type": "oauth2_client_credentials",
        "definition": CC,
        "config": {"base_url": api.url, "secret": "orchid-secret"},
    }
    settings.update(options)
    return AuthManager(redis, http=http, **settings)


async def test_many_concurrent_callers_cause_one_token_call(redis: Redis, http, api: MockApi) -> None:
    oauth = api.oauth2("/oauth/token", expires_in=600)
    runs: list[AuthRun] = []

    async def on_run(run: AuthRun) -> None:
        runs.append(run)

    managers = [manager(redis, http, api, on_run=on_run) for _ in range(10)]
    values = await asyncio.gather(*(m.values() for m in managers for _ in range(5)))
    assert oauth.token_calls == 1
    assert len({v["token"] for v in values}) == 1
    assert values[0]["access_token"] == values[0]["token"] and values[0]["token_type"] == "Bearer"
    ttl = await redis.pttl(auth_key("t1", "c1", "f1"))
    assert 530_000 < ttl <= 540_000  # 600 s lifetime - 60 s skew
    assert [r.status for r in runs] == ["success"] and runs[0].reason == "missing"


async def test_a_401_refreshes_once_for_every_holder_of_the_old_token(
    redis: Redis, http, api: MockApi
) -> None:
    oauth = api.oauth2("/oauth/token")
    managers = [manager(redis, http, api) for _ in range(5)]
    first = {(await m.values())["token"] for m in managers}
    oauth.expire_all()
    refreshed = await asyncio.gather(*(m.values(refresh=True) for m in managers for _ in range(10)))
    assert oauth.token_calls == 2
    assert len({v["token"] for v in refreshed}) == 1 and first.isdisjoint({v["token"] for v in refreshed})
    # a late refresh=True from a holder of the *new* token is a real second 401: refresh again
    await managers[0].values(refresh=True)
    assert oauth.token_calls == 3


async def test_invalid_client_marks_the_flow_broken_and_stops(
    redis: Redis, http, api: MockApi, caplog
) -> None:
    oauth = api.oauth2("/oauth/token")
    events: list[AuthFlowBrokenEvent] = []

    async def on_broken(event: AuthFlowBrokenEvent) -> None:
        events.append(event)

    caplog.set_level(logging.DEBUG)
    config = {"base_url": api.url, "secret": "wrong-secret"}
    managers = [manager(redis, http, api, config=config, on_broken=on_broken) for _ in range(5)]
    results = await asyncio.gather(*(m.values() for m in managers), return_exceptions=True)
    assert all(isinstance(r, AuthFlowBrokenError) for r in results), results
    assert oauth.token_calls == 1 and len(events) == 1
    assert events[0].to_json()["type"] == "auth_flow.broken" and "invalid_client" in events[0].reason
    with pytest.raises(AuthFlowBrokenError):  # a new execution: still no call
        await manager(redis, http, api, config=config).values()
    with pytest.raises(AuthFlowBrokenError):
        await manager(redis, http, api, status="broken").values()
    assert oauth.token_calls == 1
    assert "wrong-secret" not in caplog.text and "wrong-secret" not in json.dumps(events[0].to_json())


async def test_a_failing_token_endpoint_is_not_stormed(redis: Redis, http, api: MockApi) -> None:
    api.route("POST", "/oauth/token", json_response({"error": "temporarily_unavailable"}, status=503))
    managers = [manager(redis, http, api) for _ in range(20)]
    results = await asyncio.gather(*(m.values() for m in managers), return_exceptions=True)
    assert all(type(r) is AuthFlowError for r in results), results
    assert len(api.requests("POST", "/oauth/token")) == 1


async def test_custom_flow(redis: Redis, http, api: MockApi) -> None:
    api.route("POST", "/login", json_response({"session": {"key": "sess-42", "ttl": 90}}))
    definition = {
        "request": {"url": "{config.base_url}/login", "method": "POST", "body": {"user": "orchid"}},
        "token_path": "session.key",
        "expires_in_path": "session.ttl",
        "skew_seconds": 10,
    }
    m = manager(redis, http, api, flow_type="custom", definition=definition)
    assert (await m.values())["token"] == "sess-42"
    assert 79_000 < await redis.pttl(auth_key("t1", "c1", "f1")) <= 80_000
    assert api.requests("POST", "/login")[0].json() == {"user": "orchid"}


# --- refresh-token rotation with Postgres ---------------------------------------------------------


async def _refresh_flow(
    sessions: async_sessionmaker[AsyncSession], secrets: SecretBox, api: MockApi, refresh_token: str
) -> uuid.UUID:
    async with sessions.begin() as session:
        integration = await integrations_repo.create(session, "t1", IntegrationInput(name="mock"))
        flow = await auth_flows_repo.create(
            session,
            "t1",
            AuthFlowInput(
                integration.id,
                "oauth",
                "oauth2_refresh_token",
                {**CC, "token_url": api.url + "/oauth/token", "refresh_token": refresh_token},
            ),
            secrets=secrets,
        )
    return flow.id


async def test_rotated_refresh_token_is_stored_encrypted_and_used_once(
    redis_server, redis: Redis, sessions: async_sessionmaker[AsyncSession], http, api: MockApi
) -> None:
    oauth = api.oauth2("/oauth/token", expires_in=600)
    oauth.refresh_tokens.add("rt-initial")
    secrets = SecretBox([generate_key()])
    flow_id = await _refresh_flow(sessions, secrets, api, "rt-initial")
    store = PostgresRefreshTokenStore(sessions, secrets, tenant_id="t1", flow_id=flow_id)
    # Two workers whose Redis locks cannot see each other (separate databases), as when a lock
    # expired under a slow refresher: the Postgres claim still lets only one use the token.
    first, second = (
        Redis.from_url(redis_server.url),
        Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/1"),
    )
    await second.flushdb()
    try:
        kwargs = {"flow_id": str(flow_id), "flow_type": "oauth2_refresh_token", "token_store": store}
        results = await asyncio.gather(
            manager(first, http, api, **kwargs).values(),
            manager(second, http, api, **kwargs).values(),
            return_exceptions=True,
        )
    finally:
        await first.aclose()
        await second.aclose()
    # Never the same refresh token twice (the mock counts a reuse as a failed call): the second
    # worker's claim on the old version is refused, it waits, then refreshes with the rotated token.
    assert all(isinstance(r, dict) for r in results), results
    assert oauth.refresh_calls == 2 and oauth.failed_calls == 0
    async with sessions() as session:
        row = await session.scalar(select(AuthFlow).where(AuthFlow.id == flow_id))
    assert row is not None and row.status == "active" and row.token_version == 4
    assert is_encrypted(row.refresh_token)
    assert secrets.decrypt(row.refresh_token) in oauth.refresh_tokens  # the rotated one, live
    assert "rt-" not in json.dumps(row.refresh_token)
    # the next refresh uses the rotated token
    await redis.delete(auth_key("t1", "c1", str(flow_id)))
    await manager(redis, http, api, **kwargs).values()
    assert oauth.refresh_calls == 3 and oauth.failed_calls == 0


async def test_invalid_grant_marks_broken_in_postgres(
    redis: Redis, sessions: async_sessionmaker[AsyncSession], http, api: MockApi
) -> None:
    oauth = api.oauth2("/oauth/token")
    secrets = SecretBox([generate_key()])
    flow_id = await _refresh_flow(sessions, secrets, api, "rt-revoked")
    store = PostgresRefreshTokenStore(sessions, secrets, tenant_id="t1", flow_id=flow_id)
    events: list[AuthFlowBrokenEvent] = []

    async def on_broken(event: AuthFlowBrokenEvent) -> None:
        events.append(event)

    kwargs = {"flow_id": str(flow_id), "flow_type": "oauth2_refresh_token", "token_store": store}
    for _ in range(3):
        with pytest.raises(AuthFlowBrokenError, match="invalid_grant"):
            await manager(redis, http, api, on_broken=on_broken, **kwargs).values()
    assert oauth.refresh_calls == 1 and len(events) == 1
    async with sessions() as session:
        record = await auth_flows_repo.get(session, "t1", flow_id)
    assert record.status == "broken" and "invalid_grant" in record.status_message
    assert "rt-revoked" not in record.status_message
