"""Pure tests of engine.auth_flows: token requests and token responses for every flow type."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from engine.auth_flows import (
    AuthFlowBrokenError,
    AuthFlowError,
    FlowDefinition,
    build_token_request,
    cache_ttl_s,
    parse_token_response,
)
from engine.ports import HttpResponse

VARS = {"config": {"base_url": "https://api.test", "client_secret": "s3cr3t", "rt": "rt-1"}}


def _response(status: int, body) -> HttpResponse:
    return HttpResponse(status, {}, body, 10, 1.0, "https://api.test/token")


def test_client_credentials_request() -> None:
    flow = FlowDefinition.parse(
        "oauth2_client_credentials",
        {
            "token_url": "{config.base_url}/oauth/token",
            "client_id": "orchid",
            "client_secret": "{config.client_secret}",
            "scopes": ["read", "write"],
            "extra_params": {"audience": "https://api.test"},
        },
    )
    request = build_token_request(flow, VARS)
    assert (request.method, request.url) == ("POST", "https://api.test/oauth/token")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl((request.body or b"").decode())) == {
        "grant_type": "client_credentials",
        "client_id": "orchid",
        "client_secret": "s3cr3t",
        "scope": "read write",
        "audience": "https://api.test",
    }
    assert "s3cr3t" not in repr(flow)


def test_refresh_token_request_uses_the_current_token() -> None:
    flow = FlowDefinition.parse(
        "oauth2_refresh_token", {"token_url": "https://api.test/t", "refresh_token": "{config.rt}"}
    )
    form = dict(parse_qsl((build_token_request(flow, VARS).body or b"").decode()))
    assert form == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    rotated = dict(parse_qsl((build_token_request(flow, VARS, refresh_token="rt-9").body or b"").decode()))
    assert rotated["refresh_token"] == "rt-9"
    with pytest.raises(AuthFlowBrokenError):
        build_token_request(
            FlowDefinition.parse("oauth2_refresh_token", {"token_url": "https://x.test"}), VARS
        )


def test_custom_flow_is_a_small_plan() -> None:
    flow = FlowDefinition.parse(
        "custom",
        {
            "request": {
                "url": "{config.base_url}/login",
                "method": "POST",
                "body": {"key": "{config.client_secret}"},
            },
            "token_path": "data.session.id",
            "expires_in_path": "data.session.ttl",
            "skew_seconds": 5,
        },
    )
    request = build_token_request(flow, VARS)
    assert (request.method, request.url, request.body) == (
        "POST",
        "https://api.test/login",
        b'{"key":"s3cr3t"}',
    )
    result = parse_token_response(flow, _response(200, {"data": {"session": {"id": "sess-1", "ttl": "120"}}}))
    assert result.values == {"token": "sess-1", "access_token": "sess-1"}
    assert result.expires_in_s == 120.0 and result.refresh_token is None
    assert cache_ttl_s(result.expires_in_s, flow.skew_s) == 115.0


@pytest.mark.parametrize(
    "definition",
    [{}, {"request": {"url": "{config.base_url}/x", "sub_steps": "nope"}}, {"request": "GET /login"}],
)
def test_invalid_custom_flow_is_broken(definition) -> None:
    with pytest.raises(AuthFlowBrokenError):
        FlowDefinition.parse("custom", definition)


def test_oauth_response() -> None:
    flow = FlowDefinition.parse("oauth2_refresh_token", {"token_url": "https://x.test"})
    body = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-2"}
    result = parse_token_response(flow, _response(200, body))
    assert result.values == {"token": "at-1", "access_token": "at-1", "token_type": "Bearer"}
    assert (result.expires_in_s, result.refresh_token) == (3600.0, "rt-2")
    assert "at-1" not in repr(result) and "rt-2" not in repr(result)


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "rt-secret revoked"},
            AuthFlowBrokenError,
            "invalid_grant",
        ),
        (401, {"error": "invalid_client"}, AuthFlowBrokenError, "invalid_client"),
        (401, "nope", AuthFlowBrokenError, "HTTP 401"),
        (503, {"error": "temporarily_unavailable"}, AuthFlowError, "HTTP 503"),
        (200, {"token": "x"}, AuthFlowError, "no token"),
    ],
)
def test_failed_responses(status, body, error, text) -> None:
    flow = FlowDefinition.parse("oauth2_client_credentials", {"token_url": "https://x.test"})
    with pytest.raises(error) as raised:
        parse_token_response(flow, _response(status, body))
    assert type(raised.value) is error
    assert text in raised.value.message
    assert "rt-secret" not in raised.value.message  # descriptions may echo secrets: never copied


@pytest.mark.parametrize(
    ("expires_in", "skew", "ttl"),
    [(3600, 60, 3540), (None, 60, 3540), (60, 60, 30), (30, 60, 15), (1, 60, 1)],
)
def test_cache_ttl(expires_in, skew, ttl) -> None:
    assert cache_ttl_s(expires_in, skew) == ttl
