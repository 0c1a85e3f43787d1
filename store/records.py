"""Frozen values the repositories take and return. Nothing here touches the database or protos.

Secrets never appear in the records the API reads: config values and auth-flow definitions come
back with every secret replaced by ``"********"`` (see store.schema_validation.MASK). The worker
reads plaintext through the dedicated ``*_for_run`` functions of the repositories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

__all__ = [
    "AttemptRecord",
    "AuthFlowInput",
    "AuthFlowRecord",
    "ConfigInput",
    "ConfigRecord",
    "DlqEntryRecord",
    "DlqStatsRecord",
    "ErrorInfo",
    "ExecutionRecord",
    "IntegrationInput",
    "IntegrationRecord",
    "NewDlqEntry",
    "NewExecution",
    "Page",
    "PlanContextRecord",
    "PlanInput",
    "PlanRecord",
    "RateLimitAlertRecord",
    "RateLimitObservation",
    "RateLimitStateRecord",
    "RunTotals",
    "StatisticRecord",
    "TokenState",
]

T = TypeVar("T")
Json = dict[str, Any]

ExecutionStatus = Literal["queued", "running", "rate_limited", "success", "failed", "aborted", "cancelled"]
ExecutionKind = Literal["plan", "auth"]
ExecutionTrigger = Literal["schedule", "manual", "retry", "replay", "parent"]
AttemptOutcome = Literal[
    "running", "success", "failed", "aborted", "rate_limited", "worker_lost", "cancelled"
]
AuthFlowType = Literal["oauth2_client_credentials", "oauth2_refresh_token", "custom"]
AuthFlowStatus = Literal["unknown", "active", "broken"]
DlqReason = Literal[
    "retries_exhausted", "deliveries_exhausted", "timeout", "auth_failed", "invalid_definition", "internal"
]
AlertSeverity = Literal["WARNING", "CRITICAL"]
RateLimitSource = Literal["headers", "limiter"]

FINAL_STATUSES: frozenset[str] = frozenset({"success", "failed", "aborted", "cancelled"})


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure as recorded on executions, attempts, DLQ entries and statistics."""

    code: str
    message: str
    step_path: str = ""
    http_status: int | None = None
    request_url: str = ""

    def to_json(self) -> Json:
        out: Json = {"code": self.code, "message": self.message}
        if self.step_path:
            out["step_path"] = self.step_path
        if self.http_status is not None:
            out["http_status"] = self.http_status
        if self.request_url:
            out["request_url"] = self.request_url
        return out

    @classmethod
    def from_json(cls, value: Json | None) -> ErrorInfo | None:
        if not value:
            return None
        status = value.get("http_status")
        return cls(
            code=str(value.get("code", "")),
            message=str(value.get("message", "")),
            step_path=str(value.get("step_path", "")),
            http_status=int(status) if status is not None else None,
            request_url=str(value.get("request_url", "")),
        )


# --- Integrations, configs, auth flows, plans ----------------------------------------------


@dataclass(frozen=True, slots=True)
class IntegrationInput:
    name: str
    description: str = ""
    config_schema: Json | None = None


@dataclass(frozen=True, slots=True)
class IntegrationRecord:
    id: UUID
    tenant_id: str
    name: str
    description: str
    config_schema: Json | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigInput:
    """``enabled=None`` means "default" on create and "unchanged" on update."""

    integration_id: UUID | None
    name: str
    values: Json = field(default_factory=dict)
    enabled: bool | None = None
    auth_flow_id: UUID | None = None
    rate_limit_headers: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    id: UUID
    tenant_id: str
    integration_id: UUID
    name: str
    values: Json  # secrets masked
    enabled: bool
    auth_flow_id: UUID | None
    rate_limit_headers: Json
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AuthFlowInput:
    """``definition`` holds the type-specific fields (token_url, client_id, client_secret,
    scopes, refresh_token, extra_params, request, token_path, expires_in_path, skew_seconds).
    On update, a secret that is absent, empty or ``"********"`` keeps its stored value."""

    integration_id: UUID | None
    name: str
    type: AuthFlowType
    definition: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuthFlowRecord:
    id: UUID
    tenant_id: str
    integration_id: UUID
    name: str
    type: AuthFlowType
    definition: Json  # secrets masked
    status: AuthFlowStatus
    status_message: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TokenState:
    """Runtime token state of an auth flow: the current refresh token (plaintext) and the
    version to compare-and-swap against."""

    refresh_token: str | None
    version: int


@dataclass(frozen=True, slots=True)
class PlanInput:
    """A validated plan document. ``definition`` is stored verbatim and returned by GetPlan."""

    key: str
    definition: Json
    integration_name: str | None = None
    description: str = ""
    wait_seconds: int | None = None
    enabled: bool | None = None
    auth_flow_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class PlanRecord:
    id: UUID
    tenant_id: str
    key: str
    integration_name: str | None
    integration_id: UUID | None
    description: str
    definition: Json
    wait_seconds: int | None
    enabled: bool
    auth_flow_id: UUID | None
    created_at: datetime
    updated_at: datetime


# --- Executions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewExecution:
    plan_key: str
    trigger: ExecutionTrigger
    plan_id: UUID | None = None
    config_id: UUID | None = None
    integration: str = ""
    kind: ExecutionKind = "plan"
    auth_flow_id: UUID | None = None
    parent_id: UUID | None = None
    replay_of: UUID | None = None
    step_path: str = ""
    idempotency_key: str | None = None
    trace_context: Json = field(default_factory=dict)
    resume_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome
    error: ErrorInfo | None

    def to_json(self) -> Json:
        return {
            "attempt": self.attempt,
            "worker": self.worker,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome,
            "error": self.error.to_json() if self.error else None,
        }

    @classmethod
    def from_json(cls, value: Json) -> AttemptRecord:
        finished = value.get("finished_at")
        return cls(
            attempt=int(value["attempt"]),
            worker=str(value.get("worker", "")),
            started_at=datetime.fromisoformat(value["started_at"]),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            outcome=value.get("outcome", "failed"),
            error=ErrorInfo.from_json(value.get("error")),
        )


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    id: UUID
    tenant_id: str
    plan_key: str
    plan_id: UUID | None
    config_id: UUID | None
    integration: str
    auth_flow_id: UUID | None
    parent_id: UUID | None
    replay_of: UUID | None
    step_path: str
    kind: ExecutionKind
    trigger: ExecutionTrigger
    status: ExecutionStatus
    resume_at: datetime | None
    error: ErrorInfo | None
    stats: Json
    idempotency_key: str | None
    trace_context: Json
    cancel_requested: bool
    attempt_count: int
    created_at: datetime
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: tuple[AttemptRecord, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class PlanContextRecord:
    plan_id: UUID
    config_id: UUID
    context: Json
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What one finished run adds to its plan's statistics."""

    status: ExecutionStatus
    execution_id: UUID | None = None
    api_calls: int = 0
    records: int = 0
    bytes: int = 0
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class StatisticRecord:
    plan_key: str
    config_id: UUID
    last_run_at: datetime | None
    last_status: str | None
    last_execution_id: UUID | None
    success_count: int
    failure_count: int
    api_calls: int
    records: int
    bytes: int
    last_error: ErrorInfo | None
    updated_at: datetime


# --- DLQ --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewDlqEntry:
    execution_id: UUID
    plan_key: str
    reason: DlqReason
    config_id: UUID | None = None
    last_error: ErrorInfo | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    job: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DlqEntryRecord:
    id: UUID
    tenant_id: str
    execution_id: UUID
    plan_key: str
    config_id: UUID | None
    reason: DlqReason
    last_error: ErrorInfo | None
    attempts: tuple[AttemptRecord, ...]
    job: Json
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DlqStatsRecord:
    total: int
    by_reason: tuple[tuple[str, int], ...]
    by_plan: tuple[tuple[str, int], ...]
    oldest_at: datetime | None


# --- Rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitObservation:
    config_id: UUID
    endpoint: str
    observed_at: datetime
    remaining: int | None = None
    limit: int | None = None
    reset_at: datetime | None = None
    consumption_rate_per_minute: float | None = None
    recovery_eta_seconds: float | None = None
    exhaustion_projection_seconds: float | None = None
    source: RateLimitSource = "headers"


@dataclass(frozen=True, slots=True)
class RateLimitStateRecord:
    id: UUID
    config_id: UUID
    endpoint: str
    remaining: int | None
    limit: int | None
    reset_at: datetime | None
    consumption_rate_per_minute: float | None
    recovery_eta_seconds: float | None
    exhaustion_projection_seconds: float | None
    source: RateLimitSource
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class RateLimitAlertRecord:
    id: UUID
    config_id: UUID
    endpoint: str
    severity: AlertSeverity
    opened_at: datetime
    resolved_at: datetime | None
    remaining: int | None
    limit: int | None
    message: str
