"""Who is calling: the tenant (and roles) of each RPC, made available to servicers as a Caller.

Behind Envoy, jwt_authn has verified the token and copied its claims into the tenant and roles
headers, after dropping any copy the client sent; the server trusts those headers because it
listens on loopback where only Envoy reaches it. With AUTH_ENABLED=true the server verifies
the bearer token itself (same JWKS, issuer and audience) and ignores the headers, for
deployments without Envoy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt

from engine.errors import DependencyUnavailableError, OrchidError, UnauthenticatedError
from server.rpc_wrap import wrap_handler
from settings.model import AuthSettings

__all__ = [
    "EXEMPT_METHOD_PREFIXES",
    "Caller",
    "TenantAuthInterceptor",
    "TokenVerifier",
    "current_caller",
    "current_tenant_id",
]

log = logging.getLogger(__name__)

# Health, liveness and reflection carry no tenant: they answer without one (Envoy exempts the
# health routes from JWT; reflection still needs a token at Envoy, but no tenant here).
EXEMPT_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.", "/orchid.v1.OpsService/")
DEFAULT_ROLES_CLAIM = "roles"
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of the current RPC."""

    tenant_id: str
    roles: frozenset[str] = frozenset()
    is_admin: bool = False


_caller: ContextVar[Caller | None] = ContextVar("orchid_caller", default=None)


def current_caller() -> Caller:
    """The caller of the RPC being served; UnauthenticatedError outside an authenticated RPC."""
    caller = _caller.get()
    if caller is None:
        raise UnauthenticatedError("no authenticated caller")
    return caller


def current_tenant_id() -> str | None:
    caller = _caller.get()
    return None if caller is None else caller.tenant_id


class TokenVerifier:
    """Verify RS256 bearer tokens against a JWKS from a URI (cached by PyJWKClient) or a file
    (read again when a token names a kid it does not have, so a rotated file is picked up)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_uri: str = "",
        jwks_file: str = "",
        leeway_s: float = 30.0,
        jwks_cache_s: int = 300,
    ) -> None:
        if not issuer or not audience or bool(jwks_uri) == bool(jwks_file):
            raise ValueError(
                "AUTH_ENABLED=true needs AUTH_ISSUER_URL, AUTH_CLIENT_ID and one of "
                "AUTH_JWKS_URI / AUTH_JWKS_FILE"
            )
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._client = jwt.PyJWKClient(jwks_uri, lifespan=jwks_cache_s, timeout=5) if jwks_uri else None
        self._file = Path(jwks_file) if jwks_file else None
        self._file_keys: dict[str, jwt.PyJWK] = {}

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; UnauthenticatedError when it is not valid for this audience."""
        try:
            key = await self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise DependencyUnavailableError("cannot fetch the JWKS") from exc
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError(f"invalid token: {exc}") from exc
        return claims

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            # PyJWKClient fetches with urllib (blocking) when its cache misses.
            return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str):
            raise jwt.InvalidTokenError("token header has no kid")
        if kid not in self._file_keys:
            self._file_keys = self._load_file()
        try:
            return self._file_keys[kid]
        except KeyError:
            raise jwt.InvalidTokenError(f"unknown signing key {kid!r}") from None

    def _load_file(self) -> dict[str, jwt.PyJWK]:
        assert self._file is not None
        keys = jwt.PyJWKSet.from_json(self._file.read_text())
        return {key.key_id: key for key in keys.keys if key.key_id}


class TenantAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Resolve the Caller of every non-exempt RPC, or fail it with UNAUTHENTICATED."""

    def __init__(
        self,
        *,
        tenant_header: str = "x-orchid-tenant-id",
        roles_header: str = "x-orchid-roles",
        admin_role: str = "orchid:admin",
        tenant_claim: str = "tenant_id",
        roles_claim: str = DEFAULT_ROLES_CLAIM,
        verifier: TokenVerifier | None = None,
        exempt_prefixes: Sequence[str] = EXEMPT_METHOD_PREFIXES,
    ) -> None:
        self._tenant_header = tenant_header.lower()
        self._roles_header = roles_header.lower()
        self._admin_role = admin_role
        self._tenant_claim = tenant_claim
        self._roles_claim = roles_claim
        self._verifier = verifier
        self._exempt = tuple(exempt_prefixes)

    @classmethod
    def from_settings(
        cls, auth: AuthSettings, *, roles_claim: str = DEFAULT_ROLES_CLAIM
    ) -> TenantAuthInterceptor:
        verifier = None
        if auth.enabled:
            verifier = TokenVerifier(
                issuer=auth.issuer_url,
                audience=auth.client_id,
                jwks_uri=auth.jwks_uri,
                jwks_file=auth.jwks_file,
            )
        return cls(
            tenant_header=auth.tenant_header,
            roles_header=auth.roles_header,
            admin_role=auth.admin_role,
            tenant_claim=auth.tenant_claim,
            roles_claim=roles_claim,
            verifier=verifier,
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._exempt):
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())
        try:
            caller: Caller | OrchidError = await self.authenticate(metadata)
        except (UnauthenticatedError, DependencyUnavailableError) as exc:
            caller = exc
        return wrap_handler(handler, functools.partial(_as_caller, caller))

    async def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Caller:
        """The Caller named by the request metadata; UnauthenticatedError when there is none."""
        if self._verifier is not None:
            claims = await self._verifier.verify(_bearer_token(metadata))
            return self._caller(
                claims.get(self._tenant_claim), _roles_from_claim(claims.get(self._roles_claim))
            )
        tenant = _single_value(metadata, self._tenant_header)
        roles_header = _single_value(metadata, self._roles_header)
        return self._caller(tenant, _roles_from_header(roles_header))

    def _caller(self, tenant: object, roles: frozenset[str]) -> Caller:
        if not isinstance(tenant, str) or not tenant:
            raise UnauthenticatedError("no tenant: a token with a tenant_id claim is required")
        if not _TENANT_ID.match(tenant):
            raise UnauthenticatedError("malformed tenant id")
        return Caller(tenant_id=tenant, roles=roles, is_admin=self._admin_role in roles)


@contextlib.asynccontextmanager
async def _as_caller(
    caller: Caller | OrchidError, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[None]:
    if isinstance(caller, DependencyUnavailableError):
        await context.abort(grpc.StatusCode.UNAVAILABLE, caller.message)
    if isinstance(caller, OrchidError):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, caller.message)
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


def _values(metadata: Sequence[tuple[str, str | bytes]], name: str) -> list[str]:
    return [
        value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for key, value in metadata
        if key.lower() == name
    ]


def _single_value(metadata: Sequence[tuple[str, str | bytes]], name: str) -> str | None:
    values = _values(metadata, name)
    if len(set(values)) > 1:
        raise UnauthenticatedError(f"conflicting {name} headers")
    return values[0].strip() if values else None


def _bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    value = _single_value(metadata, "authorization")
    if value is None:
        raise UnauthenticatedError("missing bearer token")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("authorization is not a bearer token")
    return token.strip()


def _roles_from_header(value: str | None) -> frozenset[str]:
    """Envoy writes a list claim as its JSON text; a string claim as is. Accept both, and
    comma- or space-separated lists."""
    if not value:
        return frozenset()
    if value.startswith("["):
        try:
            return _roles_from_claim(json.loads(value))
        except ValueError:
            pass
    return frozenset(role for role in re.split(r"[,\s]+", value) if role)


def _roles_from_claim(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return _roles_from_header(value)
    if isinstance(value, list):
        return frozenset(role for role in value if isinstance(role, str) and role)
    return frozenset()
