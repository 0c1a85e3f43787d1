"""Named route sets for the standalone mock API (``python -m mockapi --scenario NAME``)."""

from __future__ import annotations

from collections.abc import Callable

from mockapi.ratelimit import rate_limited
from mockapi.responders import csv, json, pages, sequence, xml
from mockapi.server import MockApi

__all__ = ["SCENARIOS", "demo"]

_CONTACTS = 100


def _contact(index: int) -> dict[str, object]:
    number = index + 1
    return {
        "id": f"c{number:04d}",
        "first_name": f"First{number}",
        "last_name": f"Last{number}",
        "email": f"contact{number}@example.com",
    }


def demo(api: MockApi) -> None:
    """A small CRM: paginated contacts, per-contact details behind OAuth2, XML and CSV feeds, a
    rate-limited endpoint and a flaky one."""
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
    api.route("GET", "/health", json({"status": "ok"}))


SCENARIOS: dict[str, Callable[[MockApi], None]] = {"demo": demo}
