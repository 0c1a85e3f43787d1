"""Named route sets for the standalone mock API (``python -m mockapi --scenario NAME``)."""

from __future__ import annotations

from collections.abc import Callable

from mockapi.model import MockResponse, RecordedRequest, Responder
from mockapi.ratelimit import rate_limited
from mockapi.responders import csv, json, pages, resolve, sequence, status, xml
from mockapi.server import MockApi

__all__ = ["DEMO_API_KEY", "SCENARIOS", "SLOW_SECONDS", "demo"]

_CONTACTS = 100
_ACCOUNTS = 12
# What `make dev`'s demo config stores (encrypted) as its api_key and its plan sends.
DEMO_API_KEY = "demo-api-key"
# How long /api/slow takes to answer: long enough to cancel a run while it waits.
SLOW_SECONDS = 25.0


def _contact(index: int) -> dict[str, object]:
    number = index + 1
    return {
        "id": f"c{number:04d}",
        "first_name": f"First{number}",
        "last_name": f"Last{number}",
        "email": f"contact{number}@example.com",
    }


def _account(index: int) -> dict[str, object]:
    number = index + 1
    return {"id": f"a{number:03d}", "name": f"Account {number}", "plan": ("free", "team", "pro")[index % 3]}


def _with_api_key(responder: Responder) -> Responder:
    """401 unless the request carries ``X-Api-Key: DEMO_API_KEY``."""
    denied = status(401, {"error": "missing or wrong X-Api-Key"})

    async def respond(request: RecordedRequest) -> MockResponse:
        if request.headers.get("x-api-key") != DEMO_API_KEY:
            return await resolve(denied, request)
        return await resolve(responder, request)

    return respond


def _usage(request: RecordedRequest) -> dict[str, object]:
    account = request.path_params["id"]
    seed = sum(map(ord, account))
    return {"account_id": account, "api_calls": seed * 13 % 1000, "seats": seed % 17 + 1}


def demo(api: MockApi) -> None:
    """A small CRM: paginated contacts, per-contact details behind OAuth2, XML and CSV feeds, a
    rate-limited endpoint and a flaky one; accounts and their usage behind an API key (what
    `make dev`'s demo plan polls: offset pagination, then a fan-out over each page's accounts);
    and /api/slow, which answers after SLOW_SECONDS (a run to cancel)."""
    oauth = api.oauth2("/oauth/token", client_id="demo-client", client_secret="demo-secret", expires_in=3600)
    api.route("GET", "/api/contacts", pages(_CONTACTS // 20, 20, item=_contact, items_key="contacts"))
    api.route("GET", "/api/cursor/contacts", pages(_CONTACTS // 20, 20, style="cursor", item=_contact))
    api.route(
        "GET",
        "/api/contacts/{id}/details",
        oauth.protect(json(lambda r: {"id": r.path_params["id"], "score": len(r.path_params["id"]) * 7})),
        latency=0.005,
    )
    api.route("GET", "/api/feed.xml", xml("<feed><entry><id>1</id></entry><entry><id>2</id></entry></feed>"))
    api.route("GET", "/api/export.csv", csv([{"id": str(i), "name": f"row{i}"} for i in range(1, 6)]))
    api.route("GET", "/api/limited", rate_limited(5, 1.0, json({"ok": True}), headers="both"))
    api.route("GET", "/api/flaky", sequence(503, 500, json({"ok": True})))
    api.route(
        "GET",
        "/api/accounts",
        _with_api_key(pages(_ACCOUNTS // 4, 4, item=_account, items_key="accounts")),
    )
    api.route("GET", "/api/accounts/{id}/usage", _with_api_key(json(_usage)), latency=0.005)
    api.route("GET", "/api/slow", json({"ok": True}), latency=SLOW_SECONDS)
    api.route("GET", "/health", json({"status": "ok"}))


SCENARIOS: dict[str, Callable[[MockApi], None]] = {"demo": demo}
