"""The mock API itself, driven by a bare aiohttp client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devstack.process import free_port, port_open, wait_until
from mockapi import MockApi, csv, json, max_in_any_window, pages, rate_limited, sequence, stream, xml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(client: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with client.get(url, **kwargs) as response:
        body = await response.json(content_type=None) if response.content_length != 0 else None
        return response.status, dict(response.headers), body


async def test_offset_pages_walk_all_items(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("GET", "/contacts", pages(4, 25))
    offset: int | None = 0
    ids: list[int] = []
    while offset is not None:
        _, _, page = await get(client, f"{mock_api.url}/contacts", params={"offset": offset, "limit": 25})
        ids += [item["id"] for item in page["items"]]
        offset = page["next_offset"]
    assert ids == list(range(1, 101))
    assert len(mock_api.requests("GET", "/contacts")) == 4


async def test_cursor_pages_walk_all_items(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("GET", "/feed", pages(3, 10, style="cursor", items_key="data"))
    cursor: str | None = ""
    count = 0
    while cursor is not None:
        _, _, page = await get(client, f"{mock_api.url}/feed", params={"cursor": cursor} if cursor else {})
        count += len(page["data"])
        cursor = page["next_cursor"]
    assert count == 30


async def test_status_sequence_then_repeats_the_last(
    mock_api: MockApi, client: aiohttp.ClientSession
) -> None:
    mock_api.route("GET", "/flaky", sequence(500, 500, json({"ok": True})))
    statuses = [(await get(client, f"{mock_api.url}/flaky"))[0] for _ in range(4)]
    assert statuses == [500, 500, 200, 200]


async def test_path_parameters_reach_the_responder(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("GET", "/items/{id}/details", json(lambda r: {"id": r.path_params["id"]}))
    assert (await get(client, f"{mock_api.url}/items/a7/details"))[2] == {"id": "a7"}


async def test_route_latency_delays_the_answer(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("GET", "/slow", json({}), latency=0.1)
    started = time.monotonic()
    await get(client, f"{mock_api.url}/slow")
    assert time.monotonic() - started >= 0.1


async def test_every_request_is_recorded(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("POST", "/items", json({}, status=201))
    async with client.post(
        f"{mock_api.url}/items?x=1", data=b"payload", headers={"X-Trace": "t"}
    ) as response:
        await response.read()
    [recorded] = mock_api.requests()
    assert (recorded.method, recorded.path, recorded.query, recorded.body) == (
        "POST",
        "/items",
        [("x", "1")],
        b"payload",
    )
    assert recorded.headers["x-trace"] == "t"
    assert recorded.wall <= time.time()


async def test_sliding_rate_limit_answers_429_with_retry_after(
    mock_api: MockApi, client: aiohttp.ClientSession
) -> None:
    limited = rate_limited(10, 60.0, json({"ok": True}), mode="sliding")
    mock_api.route("GET", "/limited", limited)
    results = [await get(client, f"{mock_api.url}/limited") for _ in range(15)]
    assert [status for status, _, _ in results] == [200] * 10 + [429] * 5
    assert int(results[-1][1]["Retry-After"]) >= 1
    assert (limited.rejected, len(limited.admitted), limited.max_in_any_window()) == (5, 10, 15)


async def test_rate_limit_x_headers_count_down(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("GET", "/limited", rate_limited(3, 3600.0, json({})))
    headers = [(await get(client, f"{mock_api.url}/limited"))[1] for _ in range(2)]
    assert [h["X-RateLimit-Remaining"] for h in headers] == ["2", "1"]
    assert headers[0]["X-RateLimit-Limit"] == "3"
    assert int(headers[0]["X-RateLimit-Reset"]) > time.time()


async def test_rate_limit_ietf_headers(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.route("GET", "/limited", rate_limited(100, 60.0, json({}), headers="ietf", mode="sliding"))
    _, headers, _ = await get(client, f"{mock_api.url}/limited")
    assert headers["RateLimit"].startswith("limit=100, remaining=99, reset=")
    assert headers["RateLimit-Policy"] == "100;w=60"


def test_max_in_any_window_uses_sliding_windows() -> None:
    assert max_in_any_window([0.0, 0.9, 1.0, 1.5, 1.95, 3.0], 1.0) == 3


async def test_oauth_client_credentials_token_opens_protected_route(
    mock_api: MockApi, client: aiohttp.ClientSession
) -> None:
    oauth = mock_api.oauth2("/oauth/token", client_id="id", client_secret="secret")
    mock_api.route("GET", "/me", oauth.protect(json({"me": True})))
    assert (await get(client, f"{mock_api.url}/me"))[0] == 401
    form = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}
    async with client.post(f"{mock_api.url}/oauth/token", data=form) as response:
        token = await response.json()
    assert token["token_type"] == "Bearer"
    status, _, body = await get(
        client, f"{mock_api.url}/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert (status, body, oauth.client_credentials_calls) == (200, {"me": True}, 1)


async def test_oauth_wrong_secret_is_invalid_client(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    mock_api.oauth2("/oauth/token", client_id="id", client_secret="secret")
    auth = aiohttp.BasicAuth("id", "wrong")
    async with client.post(
        f"{mock_api.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=auth
    ) as r:
        assert (r.status, (await r.json())["error"]) == (401, "invalid_client")


async def test_oauth_refresh_rotates_and_revokes_the_old_refresh_token(
    mock_api: MockApi, client: aiohttp.ClientSession
) -> None:
    oauth = mock_api.oauth2("/oauth/token", client_id="id", client_secret="secret")
    auth = aiohttp.BasicAuth("id", "secret")
    url = f"{mock_api.url}/oauth/token"
    async with client.post(url, data={"grant_type": "client_credentials"}, auth=auth) as r:
        first = await r.json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    async with client.post(url, data=refresh, auth=auth) as r:
        second = await r.json()
    async with client.post(url, data=refresh, auth=auth) as r:
        reused = (r.status, (await r.json())["error"])
    assert second["refresh_token"] != first["refresh_token"]
    assert reused == (400, "invalid_grant")
    assert (oauth.token_calls, oauth.refresh_calls) == (3, 2)


async def test_oauth_expired_token_is_rejected(mock_api: MockApi, client: aiohttp.ClientSession) -> None:
    oauth = mock_api.oauth2("/oauth/token", client_id="id", client_secret="secret", expires_in=0.05)
    mock_api.route("GET", "/me", oauth.protect(json({})))
    form = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}
    async with client.post(f"{mock_api.url}/oauth/token", data=form) as response:
        token = (await response.json())["access_token"]
    await asyncio.sleep(0.1)
    assert (await get(client, f"{mock_api.url}/me", headers={"Authorization": f"Bearer {token}"}))[0] == 401


async def test_xml_and_csv_bodies_have_their_content_types(
    mock_api: MockApi, client: aiohttp.ClientSession
) -> None:
    mock_api.route("GET", "/x", xml("<a/>"))
    mock_api.route("GET", "/c", csv([{"id": "1"}]))
    async with client.get(f"{mock_api.url}/x") as x, client.get(f"{mock_api.url}/c") as c:
        assert (x.content_type, await x.text()) == ("application/xml", "<a/>")
        assert (c.content_type, await c.text()) == ("text/csv", "id\r\n1\r\n")


async def test_stream_serves_a_large_body_and_counts_it(
    mock_api: MockApi, client: aiohttp.ClientSession
) -> None:
    body = stream(6 * 1024 * 1024)
    mock_api.route("GET", "/big", body)
    async with client.get(f"{mock_api.url}/big") as response:
        assert len(await response.read()) == 6 * 1024 * 1024
    assert (body.bytes_sent, body.completed) == (6 * 1024 * 1024, 1)


def test_standalone_demo_serves_health() -> None:
    port = free_port()
    command = [sys.executable, "-m", "mockapi", "--port", str(port), "--scenario", "demo"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), timeout_s=15, what="python -m mockapi")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.read() == b'{"status":"ok"}'
    finally:
        process.terminate()
        process.wait(timeout=10)
