"""AiohttpCaller against the real mock API on 127.0.0.1 (allow-listed for these tests)."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from collections.abc import AsyncGenerator

import pytest

from devstack.process import free_port
from engine.errors import (
    ConnectFailedError,
    EgressDeniedError,
    InvalidUrlError,
    RequestBodyTooLargeError,
    RequestError,
    RequestTimeoutError,
    ResponseTooLargeError,
)
from engine.http_caller import AiohttpCaller, build_http_caller
from engine.ports import HttpRequest
from mockapi import MockApi, MockResponse, csv, json, raw, redirect, stream, text, xml
from settings.model import EgressSettings, ExecutionLimits

from .support import LOOPBACK_ALLOWED, eventually

MB = 1024 * 1024


async def test_json_response_is_decoded(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/contacts", json({"contacts": [{"id": 1}]}))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/contacts"))
    assert (response.status_code, response.body, response.body_format) == (
        200,
        {"contacts": [{"id": 1}]},
        "json",
    )


async def test_xml_response_is_converted_to_json(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/feed", xml("<feed><id>7</id></feed>"))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/feed"))
    assert (response.body, response.body_format) == ({"feed": {"id": "7"}}, "xml")


async def test_csv_response_becomes_a_list_of_objects(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/export", csv([{"id": "1", "name": "Ann"}, {"id": "2", "name": "Bob"}]))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/export"))
    assert response.body == [{"id": "1", "name": "Ann"}, {"id": "2", "name": "Bob"}]


async def test_text_response_stays_a_string(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/t", text("plain words"))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/t"))
    assert (response.body, response.body_format) == ("plain words", "text")


async def test_binary_response_becomes_base64(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/bin", raw(b"\x00\x01\x02", content_type="image/png"))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/bin"))
    assert (response.body, response.body_format) == ("AAEC", "base64")


async def test_gzip_response_is_decompressed_and_size_counts_decompressed_bytes(
    mock_api: MockApi, http: AiohttpCaller
) -> None:
    document = b'{"items": [' + b",".join(b'{"n": 1}' for _ in range(1000)) + b"]}"
    mock_api.route(
        "GET",
        "/gz",
        raw(gzip.compress(document), content_type="application/json", headers={"Content-Encoding": "gzip"}),
    )
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/gz"))
    assert response.size == len(document)
    assert len(response.body["items"]) == 1000


async def test_response_header_names_are_lower_cased(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/h", json({}, headers={"X-RateLimit-Remaining": "4999"}))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/h"))
    assert response.headers["x-ratelimit-remaining"] == "4999"
    assert all(name == name.lower() for name in response.headers)


async def test_params_are_appended_to_the_query_and_reported_in_url(
    mock_api: MockApi, http: AiohttpCaller
) -> None:
    mock_api.route("GET", "/search", json({}))
    request = HttpRequest("GET", f"{mock_api.url}/search?fixed=1", params=[("q", "a b"), ("q", "c")])
    response = await http.send(request)
    assert mock_api.requests("GET", "/search")[0].query == [("fixed", "1"), ("q", "a b"), ("q", "c")]
    assert response.url == f"{mock_api.url}/search?fixed=1&q=a+b&q=c"


async def test_method_headers_and_body_reach_the_server(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("POST", "/items", json({"ok": True}, status=201))
    request = HttpRequest(
        "POST",
        f"{mock_api.url}/items",
        headers={"Content-Type": "application/json", "X-Api-Key": "k"},
        body=b'{"a":1}',
    )
    response = await http.send(request)
    received = mock_api.requests("POST", "/items")[0]
    assert response.status_code == 201
    assert (received.body, received.headers["x-api-key"], received.headers["content-type"]) == (
        b'{"a":1}',
        "k",
        "application/json",
    )


async def test_duration_is_measured(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/slow", json({}), latency=0.05)
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/slow"))
    assert 50 <= response.duration_ms < 2000


async def test_sequential_requests_reuse_one_pooled_connection(
    mock_api: MockApi, http: AiohttpCaller
) -> None:
    mock_api.route("GET", "/k", json({}))
    for _ in range(10):
        await http.send(HttpRequest("GET", f"{mock_api.url}/k"))
    assert len({request.client_port for request in mock_api.requests()}) == 1


async def test_cookies_are_never_kept_between_requests(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/login", json({}, headers={"Set-Cookie": "session=tenant-a; Path=/"}))
    mock_api.route("GET", "/next", json({}))
    await http.send(HttpRequest("GET", f"{mock_api.url}/login"))
    await http.send(HttpRequest("GET", f"{mock_api.url}/next"))
    assert "cookie" not in mock_api.requests("GET", "/next")[0].headers


# --- limits ------------------------------------------------------------------------------------


async def test_request_body_over_the_limit_is_refused_before_sending(mock_api: MockApi) -> None:
    limits = ExecutionLimits(max_request_body_size=1000)
    async with build_http_caller(limits, LOOPBACK_ALLOWED) as http:
        with pytest.raises(RequestBodyTooLargeError, match="1001 bytes"):
            await http.send(HttpRequest("POST", f"{mock_api.url}/upload", body=b"x" * 1001))
    assert mock_api.requests() == []


async def test_streamed_response_is_cut_at_the_limit_without_reading_it_all(mock_api: MockApi) -> None:
    # The server writes slower than the client reads, so what it managed to send when the client
    # hung up is close to what the client read.
    body = stream(20 * MB, chunk_bytes=64 * 1024, announce_length=False, chunk_delay_s=0.0005)
    mock_api.route("GET", "/huge", body)
    async with build_http_caller(ExecutionLimits(), LOOPBACK_ALLOWED) as http:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError, match="exceeds the limit of 10485760 bytes"):
                await http.send(HttpRequest("GET", f"{mock_api.url}/huge"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    await eventually(lambda: body.aborted == 1)
    assert body.completed == 0
    assert body.bytes_sent < 14 * MB
    assert peak < 16 * MB


async def test_announced_content_length_over_the_limit_is_refused_before_reading(mock_api: MockApi) -> None:
    body = stream(20 * MB, announce_length=True, chunk_delay_s=0.001)
    mock_api.route("GET", "/announced", body)
    async with build_http_caller(ExecutionLimits(), LOOPBACK_ALLOWED) as http:
        with pytest.raises(ResponseTooLargeError, match="announces 20971520 bytes"):
            await http.send(HttpRequest("GET", f"{mock_api.url}/announced"))
    await eventually(lambda: body.aborted == 1)
    assert body.bytes_sent < 5 * MB


async def test_response_exactly_at_the_limit_is_accepted(mock_api: MockApi) -> None:
    mock_api.route("GET", "/edge", raw(b"a" * 4096, content_type="text/plain"))
    async with build_http_caller(ExecutionLimits(max_response_size=4096), LOOPBACK_ALLOWED) as http:
        response = await http.send(HttpRequest("GET", f"{mock_api.url}/edge"))
    assert response.size == 4096


# --- errors are translated ---------------------------------------------------------------------


async def test_read_timeout_becomes_request_timeout_error(mock_api: MockApi) -> None:
    mock_api.route("GET", "/stall", json({}), latency=1.0)
    async with build_http_caller(ExecutionLimits(http_read_timeout_s=0.2), LOOPBACK_ALLOWED) as http:
        with pytest.raises(RequestTimeoutError):
            await http.send(HttpRequest("GET", f"{mock_api.url}/stall"))


async def test_request_timeout_s_bounds_the_whole_request(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/stall", json({}), latency=1.0)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match=r"within 0\.2s"):
        await http.send(HttpRequest("GET", f"{mock_api.url}/stall", timeout_s=0.2))
    assert time.monotonic() - started < 0.9


async def test_refused_connection_becomes_connect_failed_error(http: AiohttpCaller) -> None:
    with pytest.raises(ConnectFailedError, match="could not connect"):
        await http.send(HttpRequest("GET", f"http://127.0.0.1:{free_port()}/"))


async def test_connection_broken_mid_body_becomes_connect_failed_error(
    mock_api: MockApi, http: AiohttpCaller
) -> None:
    async def broken() -> AsyncGenerator[bytes, None]:
        yield b'{"partial": '
        raise ConnectionResetError("server went away")

    mock_api.route("GET", "/broken", lambda _: MockResponse(200, stream=broken(), content_length=1000))
    with pytest.raises(ConnectFailedError):
        await http.send(HttpRequest("GET", f"{mock_api.url}/broken"))


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/file", "/relative/path", "http:///no-host"])
async def test_invalid_url_becomes_invalid_url_error(http: AiohttpCaller, url: str) -> None:
    with pytest.raises(InvalidUrlError):
        await http.send(HttpRequest("GET", url))


# --- redirects ---------------------------------------------------------------------------------


async def test_redirect_is_followed_and_url_is_the_final_one(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/old", redirect("/new?x=1", status=301))
    mock_api.route("GET", "/new", json({"here": True}))
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/old"))
    assert (response.status_code, response.body, response.url) == (
        200,
        {"here": True},
        f"{mock_api.url}/new?x=1",
    )


async def test_redirect_loop_stops_after_five_hops(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/loop", redirect("/loop"))
    with pytest.raises(RequestError, match="more than 5 redirects"):
        await http.send(HttpRequest("GET", f"{mock_api.url}/loop"))
    assert len(mock_api.requests("GET", "/loop")) == 6


async def test_303_after_post_becomes_get_without_body(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("POST", "/submit", redirect("/result", status=303))
    mock_api.route("GET", "/result", json({"done": True}))
    await http.send(
        HttpRequest("POST", f"{mock_api.url}/submit", headers={"Content-Type": "text/plain"}, body=b"x")
    )
    final = mock_api.requests(path="/result")[0]
    assert (final.method, final.body, "content-type" in final.headers) == ("GET", b"", False)


async def test_307_keeps_method_and_body(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("POST", "/submit", redirect("/v2/submit", status=307))
    mock_api.route("POST", "/v2/submit", json({}))
    await http.send(HttpRequest("POST", f"{mock_api.url}/submit", body=b"payload"))
    assert mock_api.requests("POST", "/v2/submit")[0].body == b"payload"


async def test_authorization_is_dropped_on_redirect_to_another_origin(
    mock_api: MockApi, http: AiohttpCaller
) -> None:
    mock_api.route("GET", "/r", redirect(f"http://localhost:{mock_api.port}/final"))
    mock_api.route("GET", "/final", json({}))
    await http.send(HttpRequest("GET", f"{mock_api.url}/r", headers={"Authorization": "Bearer secret"}))
    assert "authorization" not in mock_api.requests(path="/final")[0].headers


async def test_authorization_is_kept_on_same_origin_redirect(mock_api: MockApi, http: AiohttpCaller) -> None:
    mock_api.route("GET", "/r", redirect("/final"))
    mock_api.route("GET", "/final", json({}))
    await http.send(HttpRequest("GET", f"{mock_api.url}/r", headers={"Authorization": "Bearer secret"}))
    assert mock_api.requests(path="/final")[0].headers["authorization"] == "Bearer secret"


async def test_redirect_to_a_refused_address_is_denied(mock_api: MockApi) -> None:
    mock_api.route("GET", "/r", redirect(f"http://127.0.0.2:{mock_api.port}/inside"))
    async with build_http_caller(ExecutionLimits(), EgressSettings(allowlist=("127.0.0.1",))) as http:
        with pytest.raises(EgressDeniedError, match=r"127\.0\.0\.2 denied: loopback"):
            await http.send(HttpRequest("GET", f"{mock_api.url}/r"))


async def test_unmatched_request_is_recorded_and_answered_404(mock_api: MockApi, http: AiohttpCaller) -> None:
    response = await http.send(HttpRequest("GET", f"{mock_api.url}/missing"))
    assert response.status_code == 404
    assert [request.path for request in mock_api.requests()] == ["/missing"]


@pytest.mark.parametrize("headers", [{"X-A": "a\r\nInjected: 1"}, {"Bad Name": "v"}, {"X-Nul": "a\x00b"}])
async def test_header_injection_is_refused_before_sending(
    mock_api: MockApi, http: AiohttpCaller, headers: dict[str, str]
) -> None:
    with pytest.raises(RequestError, match="header"):
        await http.send(HttpRequest("GET", f"{mock_api.url}/x", headers=headers))
    assert mock_api.requests() == []
