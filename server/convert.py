"""Proto <-> domain conversion for the resource services: the only module besides the servicers
that touches ``_pb2`` types (STYLE 6).

Inputs are checked here once: ids must be UUIDs, required names present, enums set, and plan
documents pass engine.validate.validate_plan. Proto3 defaults ("" and 0) become None here.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from orchid.v1 import (
    auth_flows_pb2,
    common_pb2,
    configs_pb2,
    dlq_pb2,
    executions_pb2,
    integrations_pb2,
    plans_pb2,
    rate_limits_pb2,
    statistics_pb2,
    steps_pb2,
)

from engine.errors import InvalidArgumentError
from engine.validate import validate_plan
from settings.model import ExecutionLimits
from store.records import (
    AlertSeverity,
    AttemptRecord,
    AuthFlowInput,
    AuthFlowRecord,
    AuthFlowType,
    ConfigInput,
    ConfigRecord,
    DlqEntryRecord,
    DlqReason,
    DlqStatsRecord,
    ErrorInfo,
    ExecutionRecord,
    ExecutionStatus,
    IntegrationInput,
    IntegrationRecord,
    PlanInput,
    PlanRecord,
    RateLimitAlertRecord,
    RateLimitStateRecord,
    StatisticRecord,
)

Json = dict[str, Any]
M = TypeVar("M", bound=Message)

# --- Scalars ----------------------------------------------------------------------------------


def parse_uuid(value: str, field: str) -> UUID:
    if not value:
        raise InvalidArgumentError(f"{field}: required")
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidArgumentError(f"{field}: {value!r} is not a valid id") from exc


def optional_uuid(value: str, field: str) -> UUID | None:
    return parse_uuid(value, field) if value else None


def required(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgumentError(f"{field}: required")
    return value


def _id(value: UUID | None) -> str:
    return "" if value is None else str(value)


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional_datetime(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: give integral ones back as ints (443, not 443.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> Json:
    out: Json = _integral(json_format.MessageToDict(struct))
    return out


def _struct(value: Json | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if value:
        struct.update(value)
    return struct


def _message_dict(message: Message) -> Json:
    out: Json = _integral(json_format.MessageToDict(message, preserving_proto_field_name=True))
    return out


def _parse(document: Json, message: M) -> M:
    return json_format.ParseDict(document, message, ignore_unknown_fields=True)


def _error(value: ErrorInfo | None) -> common_pb2.ErrorDetail | None:
    if value is None:
        return None
    detail = common_pb2.ErrorDetail(
        code=value.code, message=value.message, step_path=value.step_path, request_url=value.request_url
    )
    if value.http_status is not None:
        detail.http_status = value.http_status
    return detail


def _enum_name(prefix: str, value: str) -> str:
    return f"{prefix}_{value.upper()}"


def _enum_value(enum: Any, name: str) -> int:
    try:
        return int(enum.Value(name))
    except ValueError:
        return 0


def _enum_domain(enum: Any, prefix: str, number: int) -> str | None:
    """The domain value of a proto enum number; None for UNSPECIFIED."""
    if number == 0:
        return None
    try:
        name = str(enum.Name(number))
    except ValueError as exc:
        raise InvalidArgumentError(f"unknown enum value {number}") from exc
    return name.removeprefix(prefix + "_").lower()


# --- Integrations -----------------------------------------------------------------------------


def integration_input(
    request: integrations_pb2.CreateIntegrationRequest | integrations_pb2.UpdateIntegrationRequest,
) -> IntegrationInput:
    return IntegrationInput(
        name=required(request.name, "name"),
        description=request.description,
        config_schema=struct_to_dict(request.config_schema) if request.HasField("config_schema") else None,
    )


def integration_to_proto(record: IntegrationRecord) -> integrations_pb2.Integration:
    message = integrations_pb2.Integration(
        id=str(record.id),
        name=record.name,
        description=record.description,
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
    )
    if record.config_schema:
        message.config_schema.CopyFrom(_struct(record.config_schema))
    return message


# --- Configs ----------------------------------------------------------------------------------


def config_input(request: configs_pb2.CreateConfigRequest | configs_pb2.UpdateConfigRequest) -> ConfigInput:
    return ConfigInput(
        integration_id=optional_uuid(request.integration_id, "integration_id"),
        name=required(request.name, "name"),
        values=struct_to_dict(request.values),
        enabled=request.enabled if request.HasField("enabled") else None,
        auth_flow_id=optional_uuid(request.auth_flow_id, "auth_flow_id"),
        rate_limit_headers=_message_dict(request.rate_limit_headers),
    )


def config_to_proto(record: ConfigRecord) -> configs_pb2.Config:
    message = configs_pb2.Config(
        id=str(record.id),
        integration_id=str(record.integration_id),
        name=record.name,
        values=_struct(record.values),  # secrets already masked by the repository
        enabled=record.enabled,
        auth_flow_id=_id(record.auth_flow_id),
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
    )
    if record.rate_limit_headers:
        message.rate_limit_headers.CopyFrom(_parse(record.rate_limit_headers, configs_pb2.RateLimitHeaders()))
    return message


# --- Auth flows -------------------------------------------------------------------------------

_AUTH_TYPE = "AUTH_FLOW_TYPE"
_AUTH_STATUS = "AUTH_FLOW_STATUS"
_AUTH_STRINGS = ("token_url", "client_id", "client_secret", "refresh_token", "token_path", "expires_in_path")


def auth_flow_input(
    request: auth_flows_pb2.CreateAuthFlowRequest | auth_flows_pb2.UpdateAuthFlowRequest,
) -> AuthFlowInput:
    kind = _enum_domain(auth_flows_pb2.AuthFlowType, _AUTH_TYPE, request.type)
    if kind is None:
        raise InvalidArgumentError("type: required")
    definition: Json = {name: getattr(request, name) for name in _AUTH_STRINGS if getattr(request, name)}
    if request.scopes:
        definition["scopes"] = list(request.scopes)
    if request.extra_params:
        definition["extra_params"] = dict(request.extra_params)
    if request.HasField("request"):
        definition["request"] = _message_dict(request.request)
    if request.HasField("skew_seconds"):
        definition["skew_seconds"] = request.skew_seconds
    if kind == "custom" and "request" not in definition:
        raise InvalidArgumentError("request: required for a CUSTOM auth flow")
    if kind != "custom" and not definition.get("token_url"):
        raise InvalidArgumentError("token_url: required for an OAuth 2.0 auth flow")
    flow_type: AuthFlowType = kind  # type: ignore[assignment]
    return AuthFlowInput(
        integration_id=optional_uuid(request.integration_id, "integration_id"),
        name=required(request.name, "name"),
        type=flow_type,
        definition=definition,
    )


def auth_flow_to_proto(record: AuthFlowRecord) -> auth_flows_pb2.AuthFlow:
    """Secrets arrive masked from the repository: they read back as "********" when set."""
    definition = record.definition
    message = auth_flows_pb2.AuthFlow(
        id=str(record.id),
        integration_id=str(record.integration_id),
        name=record.name,
        type=_enum_value(auth_flows_pb2.AuthFlowType, _enum_name(_AUTH_TYPE, record.type)),  # type: ignore[arg-type]
        scopes=list(definition.get("scopes", [])),
        extra_params=dict(definition.get("extra_params", {})),
        status=_enum_value(auth_flows_pb2.AuthFlowStatus, _enum_name(_AUTH_STATUS, record.status)),  # type: ignore[arg-type]
        status_message=record.status_message,
        created_at=_timestamp(record.created_at),
        updated_at=_timestamp(record.updated_at),
    )
    for name in _AUTH_STRINGS:
        if definition.get(name):
            setattr(message, name, str(definition[name]))
    if "request" in definition:
        message.request.CopyFrom(_parse(definition["request"], steps_pb2.Step()))
    if "skew_seconds" in definition:
        message.skew_seconds = int(definition["skew_seconds"])
    return message


# --- Plans ------------------------------------------------------------------------------------

_PLAN_OUTPUT_ONLY = ("id", "created_at", "updated_at")


def plan_input(
    request: plans_pb2.CreatePlanRequest | plans_pb2.UpdatePlanRequest, limits: ExecutionLimits
) -> PlanInput:
    """The plan document of a request, validated (PlanValidationError lists every path)."""
    document = _message_dict(request)
    for name in _PLAN_OUTPUT_ONLY:
        document.pop(name, None)
    plan = validate_plan(document, limits=limits)
    return PlanInput(
        key=plan.key,
        definition=document,
        integration_name=plan.integration or None,
        description=plan.description,
        wait_seconds=plan.wait_seconds,
        enabled=request.enabled if request.HasField("enabled") else None,
        auth_flow_id=optional_uuid(plan.auth_flow_id or "", "auth_flow_id"),
    )


def plan_to_proto(record: PlanRecord) -> plans_pb2.Plan:
    """The stored document as a Plan, plus the server fields."""
    return _plan_message(record.definition, record.id, record.created_at, record.updated_at)


def _plan_message(
    definition: Json, plan_id: UUID, created_at: datetime, updated_at: datetime
) -> plans_pb2.Plan:
    message = _parse(definition, plans_pb2.Plan())
    message.id = str(plan_id)
    message.created_at.CopyFrom(_timestamp(created_at))
    message.updated_at.CopyFrom(_timestamp(updated_at))
    return message


def plan_document_to_proto(
    plan_id: UUID, created_at: datetime, updated_at: datetime, definition_json: str
) -> plans_pb2.Plan:
    """plan_to_proto of a plan read as (id, timestamps, document JSON text), without parsing the
    document again while it is unchanged: the Plan is a function of exactly these four values, so
    its serialized form is cached on them (the hot GetPlan path) and a fresh message is returned."""
    return plans_pb2.Plan.FromString(_plan_bytes(plan_id, created_at, updated_at, definition_json))


@functools.lru_cache(maxsize=1024)
def _plan_bytes(plan_id: UUID, created_at: datetime, updated_at: datetime, definition_json: str) -> bytes:
    message = _plan_message(json.loads(definition_json), plan_id, created_at, updated_at)
    return message.SerializeToString()


# --- Executions -------------------------------------------------------------------------------

_STATUS = "EXECUTION_STATUS"
_TRIGGER_NAMES = {"replay": "EXECUTION_TRIGGER_RETRY"}
_STATS_INT = ("requests", "records", "bytes", "messages", "duration_ms")


def execution_status(number: int) -> ExecutionStatus | None:
    status = _enum_domain(executions_pb2.ExecutionStatus, _STATUS, number)
    return status  # type: ignore[return-value]


def _attempt(record: AttemptRecord) -> executions_pb2.Attempt:
    message = executions_pb2.Attempt(
        attempt=record.attempt,
        worker=record.worker,
        started_at=_timestamp(record.started_at),
        outcome=_enum_value(executions_pb2.AttemptOutcome, _enum_name("ATTEMPT_OUTCOME", record.outcome)),  # type: ignore[arg-type]
    )
    if record.finished_at is not None:
        message.finished_at.CopyFrom(_timestamp(record.finished_at))
    error = _error(record.error)
    if error is not None:
        message.error.CopyFrom(error)
    return message


def _stats(stats: Json) -> executions_pb2.ExecutionStats:
    message = executions_pb2.ExecutionStats(
        rate_limited_seconds=float(stats.get("rate_limited_seconds", 0.0))
    )
    for name in _STATS_INT:
        setattr(message, name, int(stats.get(name, 0)))
    return message


def execution_to_proto(record: ExecutionRecord) -> executions_pb2.Execution:
    trigger = _TRIGGER_NAMES.get(record.trigger, _enum_name("EXECUTION_TRIGGER", record.trigger))
    message = executions_pb2.Execution(
        id=str(record.id),
        plan_key=record.plan_key,
        config_id=_id(record.config_id),
        integration=record.integration,
        parent_id=_id(record.parent_id),
        replay_of=_id(record.replay_of),
        step_path=record.step_path,
        kind=_enum_value(executions_pb2.ExecutionKind, _enum_name("EXECUTION_KIND", record.kind)),  # type: ignore[arg-type]
        status=_enum_value(executions_pb2.ExecutionStatus, _enum_name(_STATUS, record.status)),  # type: ignore[arg-type]
        trigger=_enum_value(executions_pb2.ExecutionTrigger, trigger),  # type: ignore[arg-type]
        idempotency_key=record.idempotency_key or "",
        attempts=[_attempt(a) for a in record.attempts],
        stats=_stats(record.stats),
        created_at=_timestamp(record.created_at),
    )
    for field, value in (
        ("resume_at", record.resume_at),
        ("started_at", record.started_at),
        ("finished_at", record.finished_at),
    ):
        if value is not None:
            getattr(message, field).CopyFrom(_timestamp(value))
    error = _error(record.error)
    if error is not None:
        message.error.CopyFrom(error)
    return message


# --- Statistics -------------------------------------------------------------------------------


def statistic_to_proto(record: StatisticRecord) -> statistics_pb2.Statistic:
    message = statistics_pb2.Statistic(
        plan_key=record.plan_key,
        config_id=str(record.config_id),
        last_execution_id=_id(record.last_execution_id),
        success_count=record.success_count,
        failure_count=record.failure_count,
        api_calls=record.api_calls,
        records=record.records,
        bytes=record.bytes,
        updated_at=_timestamp(record.updated_at),
    )
    if record.last_status:
        message.last_status = _enum_value(
            executions_pb2.ExecutionStatus, _enum_name(_STATUS, record.last_status)
        )  # type: ignore[assignment]
    if record.last_run_at is not None:
        message.last_run_at.CopyFrom(_timestamp(record.last_run_at))
    error = _error(record.last_error)
    if error is not None:
        message.last_error.CopyFrom(error)
    return message


# --- DLQ --------------------------------------------------------------------------------------

_REASON = "DLQ_REASON"


def dlq_reason(number: int) -> DlqReason | None:
    reason = _enum_domain(dlq_pb2.DlqReason, _REASON, number)
    return reason  # type: ignore[return-value]


def _reason_value(reason: str) -> Any:
    return _enum_value(dlq_pb2.DlqReason, _enum_name(_REASON, reason))


def dlq_entry_to_proto(record: DlqEntryRecord) -> dlq_pb2.DlqEntry:
    message = dlq_pb2.DlqEntry(
        id=str(record.id),
        tenant_id=record.tenant_id,
        execution_id=str(record.execution_id),
        plan_key=record.plan_key,
        config_id=_id(record.config_id),
        reason=_reason_value(record.reason),
        attempts=[_attempt(a) for a in record.attempts],
        created_at=_timestamp(record.created_at),
    )
    error = _error(record.last_error)
    if error is not None:
        message.last_error.CopyFrom(error)
    return message


def dlq_stats_to_proto(record: DlqStatsRecord) -> dlq_pb2.DlqStats:
    message = dlq_pb2.DlqStats(
        total=record.total,
        by_reason=[dlq_pb2.DlqReasonCount(reason=_reason_value(r), count=n) for r, n in record.by_reason],
        by_plan=[dlq_pb2.DlqPlanCount(plan_key=p, count=n) for p, n in record.by_plan],
    )
    if record.oldest_at is not None:
        message.oldest_at.CopyFrom(_timestamp(record.oldest_at))
    return message


# --- Rate limits ------------------------------------------------------------------------------

_SEVERITY = "RATE_LIMIT_ALERT_SEVERITY"


def alert_severity(number: int) -> AlertSeverity | None:
    severity = _enum_domain(rate_limits_pb2.RateLimitAlertSeverity, _SEVERITY, number)
    return None if severity is None else severity.upper()  # type: ignore[return-value]


def rate_limit_state_to_proto(record: RateLimitStateRecord) -> rate_limits_pb2.RateLimitState:
    message = rate_limits_pb2.RateLimitState(
        config_id=str(record.config_id),
        endpoint=record.endpoint,
        consumption_rate_per_minute=record.consumption_rate_per_minute or 0.0,
        observed_at=_timestamp(record.observed_at),
        source=_enum_value(rate_limits_pb2.RateLimitSource, _enum_name("RATE_LIMIT_SOURCE", record.source)),  # type: ignore[arg-type]
    )
    for field in ("remaining", "limit", "recovery_eta_seconds", "exhaustion_projection_seconds"):
        value = getattr(record, field)
        if value is not None:
            setattr(message, field, value)
    if record.reset_at is not None:
        message.reset_at.CopyFrom(_timestamp(record.reset_at))
    return message


def rate_limit_alert_to_proto(record: RateLimitAlertRecord) -> rate_limits_pb2.RateLimitAlert:
    message = rate_limits_pb2.RateLimitAlert(
        id=str(record.id),
        config_id=str(record.config_id),
        endpoint=record.endpoint,
        severity=_enum_value(rate_limits_pb2.RateLimitAlertSeverity, _enum_name(_SEVERITY, record.severity)),  # type: ignore[arg-type]
        opened_at=_timestamp(record.opened_at),
        message=record.message,
    )
    if record.resolved_at is not None:
        message.resolved_at.CopyFrom(_timestamp(record.resolved_at))
    if record.remaining is not None:
        message.remaining = record.remaining
    if record.limit is not None:
        message.limit = record.limit
    return message
