"""An OAuth 2.0 token endpoint (client credentials, refresh token with rotation) and a guard
for routes that need its bearer tokens. Everything is counted for assertions."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson

from mockapi.model import MockResponse, RecordedRequest, Responder
from mockapi.responders import resolve

__all__ = ["OAuth2Server"]


def _json(status: int, body: object) -> MockResponse:
    return MockResponse(
        status, orjson.dumps(body), {"Content-Type": "application/json", "Cache-Control": "no-store"}
    )


@dataclass
class OAuth2Server:
    """Token endpoint state. ``token_endpoint`` is the responder for POST <token path>;
    ``protect(responder)`` answers 401 unless the request has a live bearer token.

    ``rotate_refresh_tokens``: a refresh returns a new refresh token and revokes the old one, so
    reusing an old one gets ``invalid_grant`` (as Salesforce, Xero, Auth0 with rotation do)."""

    client_id: str = "orchid-client"
    client_secret: str = "orchid-secret"
    expires_in: float = 3600.0
    issue_refresh_token: bool = True
    rotate_refresh_tokens: bool = True
    clock: Callable[[], float] = time.monotonic
    token_calls: int = 0
    client_credentials_calls: int = 0
    refresh_calls: int = 0
    failed_calls: int = 0
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (clock time)
    refresh_tokens: set[str] = field(default_factory=set)
    revoked_refresh_tokens: set[str] = field(default_factory=set)

    def expire_all(self) -> None:
        """Make every issued access token expired now (to provoke a 401 and a refresh)."""
        now = self.clock()
        self.access_tokens = dict.fromkeys(self.access_tokens, now - 1)

    def token_valid(self, token: str) -> bool:
        expiry = self.access_tokens.get(token)
        return expiry is not None and expiry > self.clock()

    def _form(self, request: RecordedRequest) -> dict[str, str]:
        if request.headers.get("content-type", "").startswith("application/json"):
            data = request.json()
            return {str(key): str(value) for key, value in data.items()} if isinstance(data, dict) else {}
        return dict(parse_qsl(request.text))

    def _client_ok(self, request: RecordedRequest, form: dict[str, str]) -> bool:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secret == self.client_secret

    def _issue(self) -> MockResponse:
        token = "at-" + secrets.token_urlsafe(16)
        self.access_tokens[token] = self.clock() + self.expires_in
        body: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.issue_refresh_token:
            refresh = "rt-" + secrets.token_urlsafe(16)
            self.refresh_tokens.add(refresh)
            body["refresh_token"] = refresh
        return _json(200, body)

    def token_endpoint(self, request: RecordedRequest) -> MockResponse:
        self.token_calls += 1
        form = self._form(request)
        grant = form.get("grant_type", "")
        if not self._client_ok(request, form):
            self.failed_calls += 1
            return _json(401, {"error": "invalid_client"})
        if grant == "client_credentials":
            self.client_credentials_calls += 1
            return self._issue()
        if grant == "refresh_token":
            self.refresh_calls += 1
            refresh = form.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                self.failed_calls += 1
                return _json(
                    400, {"error": "invalid_grant", "error_description": "unknown or revoked refresh token"}
                )
            if self.rotate_refresh_tokens:
                self.refresh_tokens.discard(refresh)
                self.revoked_refresh_tokens.add(refresh)
            return self._issue()
        self.failed_calls += 1
        return _json(400, {"error": "unsupported_grant_type"})

    def protect(self, responder: Responder) -> Responder:
        async def guarded(request: RecordedRequest) -> MockResponse:
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not self.token_valid(token):
                response = _json(401, {"error": "invalid_token"})
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            return await resolve(responder, request)

        return guarded
