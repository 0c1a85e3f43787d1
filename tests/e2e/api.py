"""One way to call every Orchid RPC over either transport, both through Envoy.

``Api.call("PlanService.GetPlan", key="k")`` sends, over REST, ``GET /api/v1/plans/k`` (the seed's
route table, written out here rather than read from the OpenAPI document, so a drifted route
fails) and, over gRPC, ``/orchid.v1.PlanService/GetPlan``. Both answer a ``Result`` with the
gRPC status, the HTTP status (REST only) and the body as snake_case JSON: Envoy's transcoder
prints proto field names, and gRPC replies go through MessageToDict with the same options.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import grpc
import httpx
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from orchid.v1 import (
    auth_flows_pb2,
    configs_pb2,
    dlq_pb2,
    executions_pb2,
    integrations_pb2,
    ops_pb2,
    plans_pb2,
    rate_limits_pb2,
    statistics_pb2,
)

Json = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# The seed's "HTTP API Endpoints" tables, verb for verb (plus the proto's extra RPCs on
# routes the seed implies: rate limits, GetDlqStats' all_tenants, Execution cancel).
ROUTES: dict[str, tuple[str, str]] = {
    "IntegrationService.ListIntegrations": ("GET", "/api/v1/integrations"),
    "IntegrationService.CreateIntegration": ("POST", "/api/v1/integrations"),
    "IntegrationService.GetIntegration": ("GET", "/api/v1/integrations/{id}"),
    "IntegrationService.UpdateIntegration": ("PUT", "/api/v1/integrations/{id}"),
    "IntegrationService.DeleteIntegration": ("DELETE", "/api/v1/integrations/{id}"),
    "ConfigService.ListConfigs": ("GET", "/api/v1/configs"),
    "ConfigService.CreateConfig": ("POST", "/api/v1/configs"),
    "ConfigService.GetConfig": ("GET", "/api/v1/configs/{id}"),
    "ConfigService.UpdateConfig": ("PUT", "/api/v1/configs/{id}"),
    "ConfigService.DeleteConfig": ("DELETE", "/api/v1/configs/{id}"),
    "ConfigService.EnableConfig": ("POST", "/api/v1/configs/{id}/enable"),
    "ConfigService.DisableConfig": ("POST", "/api/v1/configs/{id}/disable"),
    "AuthFlowService.ListAuthFlows": ("GET", "/api/v1/auth-flows"),
    "AuthFlowService.CreateAuthFlow": ("POST", "/api/v1/auth-flows"),
    "AuthFlowService.GetAuthFlow": ("GET", "/api/v1/auth-flows/{id}"),
    "AuthFlowService.UpdateAuthFlow": ("PUT", "/api/v1/auth-flows/{id}"),
    "AuthFlowService.DeleteAuthFlow": ("DELETE", "/api/v1/auth-flows/{id}"),
    "PlanService.ListPlans": ("GET", "/api/v1/plans"),
    "PlanService.CreatePlan": ("POST", "/api/v1/plans"),
    "PlanService.GetPlan": ("GET", "/api/v1/plans/{key}"),
    "PlanService.UpdatePlan": ("PUT", "/api/v1/plans/{key}"),
    "PlanService.DeletePlan": ("DELETE", "/api/v1/plans/{key}"),
    "PlanService.SetPlanEnabled": ("PATCH", "/api/v1/plans/{key}/enabled"),
    "PlanService.TriggerPlan": ("POST", "/api/v1/plans/{key}/trigger"),
    "ExecutionService.ListExecutions": ("GET", "/api/v1/executions"),
    "ExecutionService.GetExecution": ("GET", "/api/v1/executions/{id}"),
    "ExecutionService.ListExecutionChildren": ("GET", "/api/v1/executions/{id}/children"),
    "ExecutionService.CancelExecution": ("POST", "/api/v1/executions/{id}/cancel"),
    "StatisticsService.ListStatistics": ("GET", "/api/v1/statistics"),
    "StatisticsService.GetStatistic": ("GET", "/api/v1/statistics/{plan_key}/{config_id}"),
    "DlqService.ListDlqEntries": ("GET", "/api/v1/dlq"),
    "DlqService.GetDlqStats": ("GET", "/api/v1/dlq/stats"),
    "DlqService.GetDlqEntry": ("GET", "/api/v1/dlq/{id}"),
    "DlqService.RetryDlqEntry": ("POST", "/api/v1/dlq/{id}/retry"),
    "DlqService.DeleteDlqEntry": ("DELETE", "/api/v1/dlq/{id}"),
    "RateLimitService.ListRateLimitStates": ("GET", "/api/v1/rate-limits/states"),
    "RateLimitService.ListRateLimitHistory": ("GET", "/api/v1/rate-limits/history"),
    "RateLimitService.ListRateLimitAlerts": ("GET", "/api/v1/rate-limits/alerts"),
    "OpsService.Health": ("GET", "/health"),
    "OpsService.Live": ("GET", "/live"),
}

MODULES = {
    "IntegrationService": integrations_pb2,
    "ConfigService": configs_pb2,
    "AuthFlowService": auth_flows_pb2,
    "PlanService": plans_pb2,
    "ExecutionService": executions_pb2,
    "StatisticsService": statistics_pb2,
    "DlqService": dlq_pb2,
    "RateLimitService": rate_limits_pb2,
    "OpsService": ops_pb2,
}

# Envoy's grpc_json_transcoder / gRPC-HTTP mapping (google.rpc.Code -> HTTP status).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
_CODE_BY_HTTP = {
    200: grpc.StatusCode.OK,
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Result:
    """One RPC's outcome. ``text`` is everything the client received (body, or status details)."""

    rpc: str
    transport: str
    code: grpc.StatusCode
    body: Json
    text: str
    http_status: int | None = None

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))

    def ok(self) -> Json:
        assert self.code is grpc.StatusCode.OK, f"{self.transport} {self.rpc}: {self.code.name} {self.text}"
        if self.http_status is not None:
            assert self.http_status == 200, self
        return self.body

    def expect(self, code: grpc.StatusCode) -> Result:
        """Assert the gRPC code and, over REST, the HTTP status that goes with it."""
        assert self.code is code, (
            f"{self.transport} {self.rpc}: want {code.name}, got {self.code.name} {self.text}"
        )
        if self.http_status is not None:
            assert self.http_status == HTTP_STATUS[code], (
                f"{self.rpc}: HTTP {self.http_status} for {code.name}"
            )
        return self


class Transport(Protocol):
    @property
    def name(self) -> str: ...

    async def call(self, rpc: str, request: Json, metadata: list[tuple[str, str]]) -> Result: ...


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class RestTransport:
    client: httpx.AsyncClient
    name: str = "rest"

    async def call(self, rpc: str, request: Json, metadata: list[tuple[str, str]]) -> Result:
        verb, template = ROUTES[rpc]
        fields = dict(request)
        path = template
        while "{" in path:
            name = path[path.index("{") + 1 : path.index("}")]
            path = path.replace("{" + name + "}", quote(str(fields.pop(name)), safe=""))
        headers = dict(metadata)
        if verb in {"GET", "DELETE"}:
            params = {k: _query_value(v) for k, v in fields.items()}
            response = await self.client.request(verb, path, params=params, headers=headers)
        else:
            response = await self.client.request(verb, path, json=fields, headers=headers)
        return rest_result(rpc, response)


def rest_result(rpc: str, response: httpx.Response) -> Result:
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text}
    if not isinstance(body, dict):
        body = {"value": body}
    if response.status_code == 200:
        code = grpc.StatusCode.OK
    elif isinstance(body.get("code"), int) and body["code"] in _CODE_BY_NUMBER:
        code = _CODE_BY_NUMBER[body["code"]]
    else:
        code = _CODE_BY_HTTP.get(response.status_code, grpc.StatusCode.UNKNOWN)
    return Result(rpc, "rest", code, body, response.text, response.status_code)


def _method(rpc: str) -> tuple[str, type[Message], type[Message]]:
    service, method = rpc.split(".")
    descriptor = MODULES[service].DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return (
        f"/orchid.v1.{service}/{method}",
        GetMessageClass(descriptor.input_type),
        GetMessageClass(descriptor.output_type),
    )


def to_json(message: Message) -> Json:
    """A reply as Envoy's transcoder prints it: proto field names, enums by name."""
    out: Json = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


@dataclass(frozen=True, slots=True)
class GrpcTransport:
    channel: grpc.aio.Channel
    name: str = "grpc"

    async def call(self, rpc: str, request: Json, metadata: list[tuple[str, str]]) -> Result:
        path, request_type, response_type = _method(rpc)
        message = json_format.ParseDict(request, request_type())
        stub = self.channel.unary_unary(
            path,
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            reply = await stub(message, metadata=tuple(metadata), timeout=20)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            return Result(rpc, "grpc", exc.code(), {"message": details}, details)
        body = to_json(reply)
        return Result(rpc, "grpc", grpc.StatusCode.OK, body, json.dumps(body))


@dataclass(frozen=True, slots=True)
class Api:
    """Calls as one identity: ``token`` None sends no authorization at all."""

    transport: Transport
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)

    async def call(self, rpc: str, request: Json | None = None, /, **fields: Any) -> Result:
        metadata = list(self.headers.items())
        if self.token is not None:
            metadata.append(("authorization", f"Bearer {self.token}"))
        return await self.transport.call(rpc, {**(request or {}), **fields}, metadata)

    # --- resources, each with a unique name ------------------------------------------------

    async def integration(self, **fields: Any) -> Json:
        request = {"name": unique("integration"), "description": "e2e", **fields}
        return (await self.call("IntegrationService.CreateIntegration", request)).ok()

    async def config(self, integration_id: str, **fields: Any) -> Json:
        request = {
            "integration_id": integration_id,
            "name": unique("config"),
            "values": {"base_url": "http://127.0.0.1:9"},
            **fields,
        }
        return (await self.call("ConfigService.CreateConfig", request)).ok()

    async def auth_flow(self, integration_id: str, **fields: Any) -> Json:
        request = {
            "integration_id": integration_id,
            "name": unique("flow"),
            "type": "AUTH_FLOW_TYPE_OAUTH2_CLIENT_CREDENTIALS",
            "token_url": "http://127.0.0.1:9/oauth/token",
            "client_id": "e2e-client",
            **fields,
        }
        return (await self.call("AuthFlowService.CreateAuthFlow", request)).ok()

    async def plan(self, integration: str, **fields: Any) -> Json:
        request = {
            "key": unique("plan"),
            "integration": integration,
            "wait_seconds": 3600,
            "enabled": True,
            "step": {"url": "{config.base_url}/api/contacts", "method": "GET"},
            **fields,
        }
        return (await self.call("PlanService.CreatePlan", request)).ok()


async def list_all(api: Api, rpc: str, items: str, **filters: Any) -> list[Json]:
    """Every item of a paged List RPC (page_size 500, the server's maximum)."""
    out: list[Json] = []
    token = ""
    size_field = "count" if rpc == "DlqService.ListDlqEntries" else "page_size"
    for _ in range(100):
        body = (await api.call(rpc, filters, **{size_field: 500}, page_token=token)).ok()
        out.extend(body.get(items, []))
        token = body.get("next_page_token", "")
        if not token:
            return out
    raise AssertionError(f"{rpc}: more than 100 pages")
