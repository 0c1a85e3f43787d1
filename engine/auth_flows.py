"""Token acquisition for the auth flow types: build the token request, read the token response.

Pure: no I/O and no clock. engine.auth_manager sends the request, caches the result and decides
who refreshes. Flow types (``auth_flows.type``):
- ``oauth2_client_credentials``: POST form ``grant_type=client_credentials`` with client id and
  secret (in the body, as most providers accept), scopes and extra params.
- ``oauth2_refresh_token``: POST form ``grant_type=refresh_token``; the response may rotate the
  refresh token, which the manager stores back (compare-and-swap).
- ``custom``: a small plan of its own: ``request`` is a step (no fan-out, pagination or emission),
  ``token_path`` / ``expires_in_path`` are JMESPath over the response body.

String fields are templates over ``config`` (e.g. ``client_secret: "{config.client_secret}"``).
Errors never carry a token or secret: messages name the status and the OAuth ``error`` code only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import jmespath
import jmespath.exceptions

from engine.errors import OrchidError, PlanValidationError, TemplateError
from engine.plan import Step
from engine.ports import HttpRequest, HttpResponse, JsonValue
from engine.request_builder import build_request
from engine.templates import compile_template, stringify

__all__ = [
    "DEFAULT_LIFETIME_S",
    "DEFAULT_SKEW_S",
    "AuthFlowBrokenError",
    "AuthFlowError",
    "FlowDefinition",
    "FlowType",
    "TokenResult",
    "build_token_request",
    "cache_ttl_s",
    "parse_token_response",
]

FlowType = Literal["oauth2_client_credentials", "oauth2_refresh_token", "custom"]
DEFAULT_SKEW_S = 60.0
DEFAULT_LIFETIME_S = 3600.0  # a token response without a lifetime is cached this long
TOKEN_REQUEST_TIMEOUT_S = 20.0
# OAuth errors that mean the credential itself is bad: retrying cannot help, only a person can.
_PERMANENT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
_FORM = "application/x-www-form-urlencoded"


class AuthFlowError(OrchidError):
    """A token could not be obtained this time (the token endpoint failed or timed out)."""

    retryable: ClassVar[bool] = True


class AuthFlowBrokenError(AuthFlowError):
    """The credential is unusable (invalid_grant, invalid_client...): the flow is marked broken and
    nobody retries until it is updated."""

    retryable: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class FlowDefinition:
    """An auth flow's definition with its secrets decrypted (``auth_flows_repo.load_for_run``)."""

    type: FlowType
    token_url: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    refresh_token: str = field(default="", repr=False)
    extra_params: tuple[tuple[str, str], ...] = ()
    request: Step | None = None
    token_path: str = "access_token"
    expires_in_path: str = "expires_in"
    skew_s: float = DEFAULT_SKEW_S

    @classmethod
    def parse(cls, flow_type: str, definition: Mapping[str, Any]) -> FlowDefinition:
        """Read a stored definition. Raises AuthFlowBrokenError when it cannot work at all."""
        if flow_type not in ("oauth2_client_credentials", "oauth2_refresh_token", "custom"):
            raise AuthFlowBrokenError(f"unknown auth flow type {flow_type!r}")
        skew = definition.get("skew_seconds")
        request: Step | None = None
        if flow_type == "custom":
            request = _custom_step(definition.get("request"))
        elif not definition.get("token_url"):
            raise AuthFlowBrokenError("auth flow has no token_url")
        extra = definition.get("extra_params") or {}
        return cls(
            type=flow_type,  # type: ignore[arg-type]
            token_url=str(definition.get("token_url") or ""),
            client_id=str(definition.get("client_id") or ""),
            client_secret=str(definition.get("client_secret") or ""),
            scopes=tuple(str(s) for s in definition.get("scopes") or ()),
            refresh_token=str(definition.get("refresh_token") or ""),
            extra_params=tuple((str(k), str(v)) for k, v in dict(extra).items()),
            request=request,
            token_path=str(definition.get("token_path") or "access_token"),
            expires_in_path=str(definition.get("expires_in_path") or "expires_in"),
            skew_s=float(skew) if isinstance(skew, int | float) and skew >= 0 else DEFAULT_SKEW_S,
        )


def _custom_step(document: Any) -> Step:
    from engine.validate import validate_plan  # the plan validator compiles the step for us

    if not isinstance(document, Mapping):
        raise AuthFlowBrokenError("custom auth flow has no request")
    try:
        plan = validate_plan({"key": "auth-flow", "step": {**document, "emit_to_kafka": False}})
    except PlanValidationError as exc:
        raise AuthFlowBrokenError(f"custom auth flow request is invalid: {exc.message}") from exc
    if plan.step.sub_steps or plan.step.while_ is not None:
        raise AuthFlowBrokenError("custom auth flow request may not fan out or paginate")
    return plan.step


def _render(value: str, variables: Mapping[str, JsonValue]) -> str:
    if "{" not in value:
        return value
    try:
        return stringify(compile_template(value).value(variables))
    except TemplateError:
        return value  # a literal value that merely contains a brace


def build_token_request(
    flow: FlowDefinition, variables: Mapping[str, JsonValue], *, refresh_token: str | None = None,
    max_body_bytes: int = 1 << 20,
) -> HttpRequest:  # fmt: skip
    """The request that obtains a token. ``variables`` holds ``config`` (and ``auth`` for custom
    flows that chain); ``refresh_token`` is the current one for the refresh-token flow."""
    if flow.type == "custom":
        assert flow.request is not None
        return build_request(flow.request, variables, max_body_bytes=max_body_bytes)
    form: list[tuple[str, str]] = []
    if flow.type == "oauth2_refresh_token":
        token = _render(refresh_token if refresh_token is not None else flow.refresh_token, variables)
        if not token:
            raise AuthFlowBrokenError("auth flow has no refresh token")
        form += [("grant_type", "refresh_token"), ("refresh_token", token)]
    else:
        form.append(("grant_type", "client_credentials"))
    if flow.client_id:
        form.append(("client_id", _render(flow.client_id, variables)))
    if flow.client_secret:
        form.append(("client_secret", _render(flow.client_secret, variables)))
    if flow.scopes:
        form.append(("scope", " ".join(flow.scopes)))
    form += [(name, _render(value, variables)) for name, value in flow.extra_params]
    return HttpRequest(
        "POST",
        _render(flow.token_url, variables),
        {"Content-Type": _FORM, "Accept": "application/json"},
        (),
        urlencode(form).encode(),
        TOKEN_REQUEST_TIMEOUT_S,
    )


@dataclass(frozen=True, slots=True)
class TokenResult:
    """A token response, read. ``values`` are the ``auth.*`` template variables."""

    values: dict[str, JsonValue]
    expires_in_s: float | None
    refresh_token: str | None = field(default=None, repr=False)  # rotated, when the response has one

    def __repr__(self) -> str:  # never print the token
        return f"TokenResult(expires_in_s={self.expires_in_s!r}, keys={sorted(self.values)!r})"


def _search(path: str, body: JsonValue) -> JsonValue:
    try:
        return jmespath.search(path, body)
    except jmespath.exceptions.JMESPathError as exc:
        raise AuthFlowBrokenError(f"auth flow path {path!r} is invalid: {exc}") from exc


def _oauth_error(body: JsonValue) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, str) and error.replace("_", "").isalnum():
            return error
    return ""


def parse_token_response(flow: FlowDefinition, response: HttpResponse) -> TokenResult:
    """Read the token and its lifetime. Raises AuthFlowBrokenError for a rejected credential,
    AuthFlowError for anything worth retrying later."""
    status = response.status_code
    if not 200 <= status < 300:
        error = _oauth_error(response.body)
        text = f"token endpoint answered HTTP {status}" + (f" ({error})" if error else "")
        if error in _PERMANENT_ERRORS or status == 401:
            raise AuthFlowBrokenError(text)
        raise AuthFlowError(text)
    token = _search(flow.token_path, response.body)
    if not isinstance(token, str) or not token:
        raise AuthFlowError(f"token response has no token at {flow.token_path!r}")
    lifetime = _search(flow.expires_in_path, response.body)
    expires_in: float | None = None
    if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
        expires_in = float(lifetime)
    elif isinstance(lifetime, str):
        try:
            expires_in = float(lifetime) if float(lifetime) > 0 else None
        except ValueError:
            expires_in = None
    values: dict[str, JsonValue] = {"token": token, "access_token": token}
    body = response.body if isinstance(response.body, Mapping) else {}
    token_type = body.get("token_type")
    if isinstance(token_type, str):
        values["token_type"] = token_type
    rotated = body.get("refresh_token") if flow.type != "custom" else None
    return TokenResult(values, expires_in, rotated if isinstance(rotated, str) and rotated else None)


def cache_ttl_s(expires_in_s: float | None, skew_s: float) -> float:
    """How long to cache a token: its lifetime minus the skew; half the lifetime when the skew
    would eat it all; at least one second."""
    lifetime = DEFAULT_LIFETIME_S if expires_in_s is None else expires_in_s
    ttl = lifetime - skew_s
    if ttl <= 0:
        ttl = lifetime / 2
    return max(1.0, ttl)
