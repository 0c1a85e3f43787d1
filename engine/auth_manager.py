"""AuthProvider over Redis: one cached token per (tenant, config, auth flow), refreshed by exactly
one worker at a time.

Redis keys (the spec's ``auth:{tenant_id}:{config_id}:{auth_flow_id}``, plus three helpers):
- ``auth:{t}:{c}:{f}``         the token's ``auth.*`` values as JSON; TTL = lifetime - skew
- ``auth:{t}:{c}:{f}:lock``    the refresher's random id (SET NX PX); deleted only by its owner
- ``auth:{t}:{c}:{f}:error``   why the last refresh failed, for a few seconds (transient) or minutes
                               (broken): waiters fail with it instead of storming the token endpoint

``values()`` returns the cached token. When it is missing, every caller in every worker races for
the lock; the winner re-checks the cache, fetches a token, caches it and releases the lock, and
the others poll the cache (bounded by ``wait_timeout_s``) and use the winner's token. A 401 calls
``values(refresh=True)``: the cached token is deleted only if it is still the one this caller was
given (compare-and-delete), so fifty tasks hit by the same 401 cause one refresh, not fifty.

Refresh-token rotation is fenced in Postgres (``RefreshTokenStore``): the refresher first *claims*
the current refresh token (``token_version`` v -> v+1, only if still v), uses it, then stores the
rotated one with compare-and-swap on v+1. A second refresher, even one whose Redis lock expired
under it, cannot claim the same version, so the old refresh token is never sent twice (providers
that detect reuse revoke the whole token family). ``invalid_grant`` (and other permanent OAuth
errors) marks the flow broken, publishes an event, and stops further attempts.

Tokens and secrets are never logged, never put in an error message, never in an event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.auth_flows import (
    AuthFlowBrokenError,
    AuthFlowError,
    FlowDefinition,
    TokenResult,
    build_token_request,
    cache_ttl_s,
    parse_token_response,
)
from engine.errors import DependencyUnavailableError, OrchidError
from engine.ports import HttpCaller, JsonValue

__all__ = [
    "AuthFlowBrokenEvent",
    "AuthManager",
    "AuthRun",
    "RefreshTokenStore",
    "StoredRefreshToken",
    "auth_key",
]

log = logging.getLogger(__name__)

_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_BROKEN_MARK_S = 300.0  # how long waiters trust the "broken" mark before re-checking
_FAILED_MARK_S = 2.0  # how long a transient failure is shared with waiters


class _ClaimLostError(AuthFlowError):
    """Another refresher claimed the refresh token first; use its result instead."""


def auth_key(tenant_id: str, config_id: str, flow_id: str) -> str:
    return f"auth:{tenant_id}:{config_id}:{flow_id}"


@dataclass(frozen=True, slots=True)
class StoredRefreshToken:
    refresh_token: str | None
    version: int


class RefreshTokenStore(Protocol):
    """The runtime refresh-token state of one auth flow (store/auth_flow_state_repo.py)."""

    async def load(self) -> StoredRefreshToken: ...

    async def claim(self, version: int) -> bool:
        """Move the version from ``version`` to ``version + 1`` if nobody else did: the right to
        use the current refresh token once."""
        ...

    async def store_rotated(self, claimed_version: int, refresh_token: str) -> bool:
        """Store a rotated refresh token (encrypted) if the version is still ``claimed_version``."""
        ...

    async def set_status(self, status: Literal["active", "broken"], message: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class AuthRun:
    """One token acquisition, for the worker to record as a child execution (kind "auth")."""

    tenant_id: str
    config_id: str
    flow_id: str
    started_at: datetime
    finished_at: datetime
    status: Literal["success", "failed"]
    reason: Literal["missing", "refresh"]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AuthFlowBrokenEvent:
    """Published once when a flow is marked broken; carries no secret."""

    tenant_id: str
    config_id: str
    flow_id: str
    reason: str
    timestamp: str

    def to_json(self) -> dict[str, str]:
        return {
            "type": "auth_flow.broken",
            "tenant_id": self.tenant_id,
            "config_id": self.config_id,
            "auth_flow_id": self.flow_id,
            "reason": self.reason,
            "timestamp": self.timestamp,
        }


class AuthManager:
    """AuthProvider for one execution (cheap to build: the worker makes one per execution).

    ``definition`` is the flow's definition with secrets decrypted; ``config`` the config values
    (templates in the definition read ``config.*``); ``status`` the flow's stored status (a
    broken flow fails at once). ``token_store`` is required for ``oauth2_refresh_token``.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        http: HttpCaller,
        tenant_id: str,
        config_id: str,
        flow_id: str,
        flow_type: str,
        definition: Mapping[str, Any],
        config: Mapping[str, JsonValue],
        status: str = "unknown",
        token_store: RefreshTokenStore | None = None,
        on_run: Callable[[AuthRun], Awaitable[None]] | None = None,
        on_broken: Callable[[AuthFlowBrokenEvent], Awaitable[None]] | None = None,
        lock_ttl_s: float = 30.0,
        wait_timeout_s: float = 30.0,
        poll_s: float = 0.02,
    ) -> None:
        self._redis = redis
        self._http = http
        self._tenant_id, self._config_id, self._flow_id = tenant_id, config_id, flow_id
        self._flow_type = flow_type
        self._definition = definition
        self._flow: FlowDefinition | None = None
        self._variables: dict[str, JsonValue] = {"config": dict(config)}
        self._status = status
        self._store = token_store
        self._on_run = on_run
        self._on_broken = on_broken
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._wait_timeout_s = wait_timeout_s
        self._poll_s = poll_s
        self._key = auth_key(tenant_id, config_id, flow_id)
        self._last_raw: bytes | None = None
        self._compare_and_delete = redis.register_script(_COMPARE_AND_DELETE)

    # --- AuthProvider -----------------------------------------------------------------------

    async def values(self, *, refresh: bool = False) -> Mapping[str, JsonValue]:
        if self._status == "broken":
            raise AuthFlowBrokenError(f"auth flow {self._flow_id} is broken; update it to retry")
        try:
            if refresh and self._last_raw is not None:
                await self._compare_and_delete(keys=[self._key], args=[self._last_raw])
            return await self._get_or_refresh("refresh" if refresh else "missing")
        except RedisError as exc:
            raise DependencyUnavailableError(f"auth cache: Redis is unavailable: {exc}") from exc

    async def invalidate(self) -> None:
        """Drop the cached token whatever it is (e.g. after the flow was updated)."""
        await self._redis.delete(self._key)

    # --- single flight ------------------------------------------------------------------------

    async def _get_or_refresh(self, reason: Literal["missing", "refresh"]) -> Mapping[str, JsonValue]:
        deadline = time.monotonic() + self._wait_timeout_s
        pause = self._poll_s
        while True:
            cached = await self._cached()
            if cached is not None:
                return cached
            await self._raise_marked_error()
            owner = uuid.uuid4().hex
            if await self._redis.set(self._key + ":lock", owner, nx=True, px=self._lock_ttl_ms):
                try:
                    cached = await self._cached()  # the previous owner may have just finished
                    if cached is not None:
                        return cached
                    await self._raise_marked_error()  # ...or just failed
                    return await self._refresh(reason)
                except _ClaimLostError:
                    pass  # a refresher we cannot see (its lock expired) holds the claim: wait for it
                finally:
                    await self._compare_and_delete(keys=[self._key + ":lock"], args=[owner])
            if time.monotonic() + pause > deadline:
                raise AuthFlowError(
                    f"auth flow {self._flow_id}: no token after waiting {self._wait_timeout_s:.0f}s for "
                    "another worker's refresh"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    async def _cached(self) -> Mapping[str, JsonValue] | None:
        raw = await self._redis.get(self._key)
        if raw is None:
            return None
        self._last_raw = raw.encode() if isinstance(raw, str) else raw
        values: dict[str, JsonValue] = json.loads(raw)
        return values

    async def _raise_marked_error(self) -> None:
        marked = await self._redis.get(self._key + ":error")
        if marked is None:
            return
        data = json.loads(marked)
        if data.get("broken"):
            raise AuthFlowBrokenError(str(data.get("message", "auth flow is broken")))
        raise AuthFlowError(str(data.get("message", "token refresh failed")))

    async def _mark_error(self, error: AuthFlowError) -> None:
        broken = isinstance(error, AuthFlowBrokenError)
        payload = json.dumps({"broken": broken, "message": error.message})
        seconds = _BROKEN_MARK_S if broken else _FAILED_MARK_S
        await self._redis.set(self._key + ":error", payload, px=int(seconds * 1000))

    # --- one refresh --------------------------------------------------------------------------

    async def _refresh(self, reason: Literal["missing", "refresh"]) -> Mapping[str, JsonValue]:
        started = datetime.now(UTC)
        try:
            result = await self._acquire()
        except _ClaimLostError:
            raise
        except AuthFlowError as exc:
            await self._mark_error(exc)
            await self._report(started, reason, exc.message)
            if isinstance(exc, AuthFlowBrokenError):
                await self._broken(exc.message)
            raise
        except OrchidError as exc:  # the HTTP caller's errors: connect failed, timeout, egress...
            error = AuthFlowError(f"auth flow {self._flow_id}: token request failed: {exc.message}")
            await self._mark_error(error)
            await self._report(started, reason, error.message)
            raise error from exc
        ttl = cache_ttl_s(result.expires_in_s, self._flow_definition().skew_s)
        values = {**result.values, "expires_at": int(time.time() + (result.expires_in_s or ttl))}
        raw = json.dumps(values).encode()
        await self._redis.set(self._key, raw, px=int(ttl * 1000))
        await self._redis.delete(self._key + ":error")
        self._last_raw = raw
        await self._report(started, reason, None)
        if self._status != "active" and self._store is not None:
            await self._store.set_status("active")
            self._status = "active"
        log.info("auth flow %s: new token for config %s (cached %.0fs)", self._flow_id, self._config_id, ttl)
        return values

    def _flow_definition(self) -> FlowDefinition:
        if self._flow is None:
            self._flow = FlowDefinition.parse(self._flow_type, self._definition)
        return self._flow

    async def _acquire(self) -> TokenResult:
        flow = self._flow_definition()
        if flow.type != "oauth2_refresh_token":
            request = build_token_request(flow, self._variables)
            return parse_token_response(flow, await self._http.send(request))
        if self._store is None:
            raise AuthFlowBrokenError("refresh-token flow has no token store configured")
        state = await self._store.load()
        if not await self._store.claim(state.version):
            raise _ClaimLostError(f"auth flow {self._flow_id}: another worker is rotating the refresh token")
        request = build_token_request(flow, self._variables, refresh_token=state.refresh_token)
        result = parse_token_response(flow, await self._http.send(request))
        if result.refresh_token is not None and not await self._store.store_rotated(
            state.version + 1, result.refresh_token
        ):
            log.warning(
                "auth flow %s: rotated refresh token not stored (the flow changed meanwhile)", self._flow_id
            )
        return result

    async def _report(
        self, started: datetime, reason: Literal["missing", "refresh"], error: str | None
    ) -> None:
        if self._on_run is None:
            return
        run = AuthRun(
            self._tenant_id, self._config_id, self._flow_id, started, datetime.now(UTC),
            "failed" if error else "success", reason, error,
        )  # fmt: skip
        try:
            await self._on_run(run)
        except Exception:
            log.warning("auth flow %s: could not record the auth run", self._flow_id, exc_info=True)

    async def _broken(self, message: str) -> None:
        self._status = "broken"
        log.warning("auth flow %s marked broken: %s", self._flow_id, message)
        if self._store is not None:
            try:
                await self._store.set_status("broken", message)
            except OrchidError:
                log.warning("auth flow %s: could not store the broken status", self._flow_id, exc_info=True)
        if self._on_broken is not None:
            event = AuthFlowBrokenEvent(
                self._tenant_id, self._config_id, self._flow_id, message,
                datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            )  # fmt: skip
            try:
                await self._on_broken(event)
            except Exception:
                log.warning("auth flow %s: could not publish the broken event", self._flow_id, exc_info=True)
