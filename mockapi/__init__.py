"""A scriptable mock of the third-party APIs Orchid polls: a real HTTP server on 127.0.0.1.

    from mockapi import MockApi, json, pages, sequence, rate_limited

    async with MockApi() as api:
        api.route("GET", "/contacts", pages(3, 50, style="cursor"))
        api.route("GET", "/flaky", sequence(500, 500, json({"ok": True})))
        limited = api.route("GET", "/limited", rate_limited(10, 1.0, json({"ok": True}))).responder
        oauth = api.oauth2("/oauth/token", expires_in=60)
        api.route("GET", "/me", oauth.protect(json({"me": 1})))

Also ``python -m mockapi --port 8900 --scenario demo`` for a standalone demo API, and
``mockapi.kafka_reader.KafkaReader`` to read Orchid's Kafka messages back in tests.
"""

from mockapi.model import MockResponse, RecordedRequest, Responder
from mockapi.oauth import OAuth2Server
from mockapi.ratelimit import RateLimited, max_in_any_window, rate_limited
from mockapi.responders import (
    Stream,
    csv,
    json,
    large_json,
    pages,
    raw,
    redirect,
    sequence,
    status,
    stream,
    text,
    with_headers,
    xml,
)
from mockapi.server import MockApi, Route

__all__ = [
    "MockApi",
    "MockResponse",
    "OAuth2Server",
    "RateLimited",
    "RecordedRequest",
    "Responder",
    "Route",
    "Stream",
    "csv",
    "json",
    "large_json",
    "max_in_any_window",
    "pages",
    "rate_limited",
    "raw",
    "redirect",
    "sequence",
    "status",
    "stream",
    "text",
    "with_headers",
    "xml",
]
