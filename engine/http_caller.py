"""The HttpCaller adapter: one pooled aiohttp session per worker process.

aiohttp is used directly rather than through httpx (with or without the httpx-aiohttp
transport): measured on loopback, the httpx layer costs ~300 us of CPU per request, which caps a
worker at ~3k req/s where bare aiohttp does ~14k (see the adapters report). aiohttp speaks
HTTP/1.1 only; there is no HTTP/2.

What this module guarantees, whatever the library does underneath:
- only engine.errors.RequestError subclasses escape (library errors are translated here);
- every destination, redirect hops included, passes the egress policy on its resolved address;
- a response body is read at most up to ExecutionLimits.max_response_size (+1 byte) before
  ResponseTooLargeError, and a request body over max_request_body_size is never sent;
- cookies are never kept: the session is shared by every tenant.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from engine.egress import EgressPolicy, EgressResolver
from engine.errors import (
    ConnectFailedError,
    InvalidUrlError,
    RequestBodyTooLargeError,
    RequestError,
    RequestTimeoutError,
    ResponseTooLargeError,
)
from engine.ports import HttpRequest, HttpResponse
from engine.response_format import decode_body
from settings.model import EgressSettings, ExecutionLimits

__all__ = ["MAX_REDIRECTS", "AiohttpCaller", "build_http_caller"]

MAX_REDIRECTS = 5
USER_AGENT = "Orchid/0.1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that must not follow a redirect to another origin: they carry the tenant's credentials.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})
# Decoding a big body (orjson, xmltodict, csv) blocks for tens of ms: do it off the event loop.
_DECODE_IN_THREAD_BYTES = 256 * 1024
# APIs send long Link / Set-Cookie / CSP headers; aiohttp's 8 KB default rejects some real ones.
_MAX_HEADER_BYTES = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_HOSTS_CHECKED_MAX = 4096


class AiohttpCaller:
    """HttpCaller over one shared aiohttp.ClientSession. Build it with ``open()`` inside a
    running event loop (or use ``build_http_caller``) and close it once with ``aclose()``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: EgressPolicy,
        *,
        max_response_size: int,
        max_request_body_size: int,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        self._session = session
        self._policy = policy
        self._max_response_size = max_response_size
        self._max_request_body_size = max_request_body_size
        self._max_redirects = max_redirects
        # Hosts that passed the egress policy's URL check (a pure function of the host): the
        # check parses IP literals with ipaddress, ~10 us a request. Resolved addresses are still
        # checked on every new connection by EgressResolver.
        self._hosts_checked: set[str] = set()

    @classmethod
    def open(cls, limits: ExecutionLimits, egress: EgressSettings) -> AiohttpCaller:
        policy = EgressPolicy.from_settings(egress)
        connector = aiohttp.TCPConnector(
            limit=limits.http_max_connections,
            resolver=EgressResolver(policy),
            ttl_dns_cache=10,
            keepalive_timeout=30,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None,  # waiting for a free pooled connection is not a connect failure
            sock_connect=limits.http_connect_timeout_s,
            sock_read=limits.http_read_timeout_s,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            trust_env=False,  # an environment proxy would bypass the egress check
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
            max_line_size=_MAX_HEADER_BYTES,
            max_field_size=_MAX_HEADER_BYTES,
        )
        return cls(
            session,
            policy,
            max_response_size=limits.max_response_size,
            max_request_body_size=limits.max_request_body_size,
        )

    async def aclose(self) -> None:
        if not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> AiohttpCaller:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send(self, request: HttpRequest) -> HttpResponse:
        body = request.body
        if body is not None and len(body) > self._max_request_body_size:
            raise RequestBodyTooLargeError(
                f"request body is {len(body)} bytes; the limit is {self._max_request_body_size}"
            )
        check_headers(request.headers)
        url = parse_url(request.url)
        if request.params:
            url = url.extend_query(list(request.params))
        started = time.perf_counter()
        try:
            if request.timeout_s is None:
                status, headers, raw, final_url = await self._follow(
                    request.method.upper(), url, dict(request.headers), body
                )
            else:
                async with asyncio.timeout(request.timeout_s):
                    status, headers, raw, final_url = await self._follow(
                        request.method.upper(), url, dict(request.headers), body
                    )
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"{request.method} {url.host} did not complete within {request.timeout_s}s"
            ) from exc
        duration_ms = (time.perf_counter() - started) * 1000.0
        content_type = headers.get("content-type")
        if len(raw) > _DECODE_IN_THREAD_BYTES:
            decoded, body_format = await asyncio.to_thread(decode_body, raw, content_type)
        else:
            decoded, body_format = decode_body(raw, content_type)
        return HttpResponse(
            status_code=status,
            headers=headers,
            body=decoded,
            size=len(raw),
            duration_ms=duration_ms,
            url=str(final_url),
            body_format=body_format,
        )

    async def _follow(
        self, method: str, url: URL, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes, URL]:
        """Send, following up to max_redirects redirects; every hop passes the egress check."""
        for _ in range(self._max_redirects + 1):
            self._check_host(url.raw_host or "")
            status, response_headers, raw = await self._exchange(method, url, headers, body)
            location = response_headers.get("location")
            if status not in _REDIRECT_STATUSES or not location:
                return status, response_headers, raw, url
            target = redirect_target(url, location)
            method, body, headers = redirected_request(status, method, body, headers, url, target)
            url = target
        raise RequestError(f"more than {self._max_redirects} redirects, last to {url}")

    def _check_host(self, host: str) -> None:
        checked = self._hosts_checked
        if host not in checked:
            self._policy.check_url_host(host)  # raises EgressDeniedError
            if len(checked) >= _HOSTS_CHECKED_MAX:
                checked.clear()
            checked.add(host)

    async def _exchange(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            async with self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            ) as response:
                response_headers = lower_headers(response.headers)
                raw = await read_limited(response, self._max_response_size)
                return response.status, response_headers, raw
        except aiohttp.ClientError as exc:
            raise translate_error(exc, url) from exc
        except TimeoutError as exc:
            raise RequestTimeoutError(f"{method} {url.host}: timed out") from exc
        except ValueError as exc:  # aiohttp's checks of what we asked it to send (method, headers)
            raise RequestError(f"{method} {url}: invalid request: {exc}") from exc


@asynccontextmanager
async def build_http_caller(limits: ExecutionLimits, egress: EgressSettings) -> AsyncIterator[AiohttpCaller]:
    """The worker's one HttpCaller: ``async with build_http_caller(s.limits, s.egress) as http``."""
    caller = AiohttpCaller.open(limits, egress)
    try:
        yield caller
    finally:
        await caller.aclose()


def parse_url(raw: str) -> URL:
    """An absolute http(s) URL, or InvalidUrlError."""
    try:
        url = URL(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidUrlError(f"invalid URL {raw!r}: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise InvalidUrlError(f"not an absolute http(s) URL: {raw!r}")
    return url


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse header names that are not HTTP tokens and values that would split the header
    block (a rendered template must never inject headers), before anything is sent."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise RequestError(f"invalid request header name {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise RequestError(f"request header {name!r} contains a line break or NUL")


def redirect_target(current: URL, location: str) -> URL:
    try:
        target = current.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise InvalidUrlError(f"redirect from {current} to an invalid URL {location!r}: {exc}") from exc
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise InvalidUrlError(f"redirect from {current} to a non-http(s) URL {location!r}")
    return target


def redirected_request(
    status: int, method: str, body: bytes | None, headers: dict[str, str], source: URL, target: URL
) -> tuple[str, bytes | None, dict[str, str]]:
    """The method, body and headers of the next hop, as browsers and curl do it: 303 (and 301/302
    after a POST) become a GET without a body; credentials never cross to another origin."""
    drop: set[str] = set()
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        drop |= _BODY_HEADERS
    if source.origin() != target.origin():
        drop |= _CREDENTIAL_HEADERS
    if drop:
        headers = {name: value for name, value in headers.items() if name.lower() not in drop}
    return method, body, headers


def lower_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """Lower-cased names; a repeated header (Link, Set-Cookie) is joined with ", " as RFC 9110 allows."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the (decompressed) body, refusing as soon as it passes ``limit`` bytes."""
    announced = response.content_length
    # A compressed body's Content-Length is a lower bound only; the streaming check covers it.
    compressed = "content-encoding" in response.headers
    if announced is not None and not compressed and response.method != "HEAD":
        if announced > limit:
            response.close()
            raise ResponseTooLargeError(
                f"response from {response.url.host} announces {announced} bytes; the limit is {limit}"
            )
        # aiohttp reads exactly Content-Length bytes of an uncompressed body: within the limit.
        return await response.read()
    buffer = bytearray()
    async for chunk in response.content.iter_any():
        buffer += chunk
        if len(buffer) > limit:
            # close() drops the connection instead of draining the rest of a huge body into the pool.
            response.close()
            raise ResponseTooLargeError(
                f"response from {response.url.host} exceeds the limit of {limit} bytes (stopped reading)"
            )
    return bytes(buffer)


def translate_error(exc: aiohttp.ClientError, url: URL) -> RequestError:
    """The one place aiohttp's exceptions become Orchid's."""
    where = f"{url.host}:{url.port}"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return RequestTimeoutError(f"{where}: {exc or type(exc).__name__}")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return InvalidUrlError(f"invalid URL {url}: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ConnectFailedError(f"could not resolve {url.host}: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectFailedError(f"could not connect to {where}: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectFailedError(f"{where}: the connection broke while reading the body: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        return ConnectFailedError(f"{where}: invalid HTTP response: {exc.message}")
    return ConnectFailedError(f"{where}: {type(exc).__name__}: {exc}")
