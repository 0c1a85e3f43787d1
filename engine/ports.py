"""The seams of the engine: what the plan runner needs from the outside world.

The runner (engine/run.py and friends) depends only on these Protocols and values. Adapters
(engine/http_caller.py, engine/kafka_sink.py, engine/limiter_memory.py, later a Redis limiter)
implement them; tests may use small fakes that implement the same Protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

JsonValue: TypeAlias = Any  # JSON as decoded: dict | list | str | int | float | bool | None

RateLimitScope = Literal["per_config", "per_endpoint", "global"]
# "rate_limited": a rate-limit wait would exceed max_wait; the caller parks the execution and runs
# it again after ExecutionOutcome.resume_after_s (proto EXECUTION_STATUS_RATE_LIMITED).
ExecutionStatus = Literal["success", "failed", "aborted", "cancelled", "rate_limited"]


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request, fully rendered: templates already applied, query already in ``params``."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response as the plan sees it. ``body`` is decoded by content type: JSON as is, XML
    converted to JSON, CSV to a list of objects, anything else a base64 string."""

    status_code: int
    headers: Mapping[str, str]  # lower-cased names
    body: JsonValue
    size: int  # bytes on the wire, after decompression
    duration_ms: float
    url: str  # the URL actually requested, with its query string
    body_format: Literal["json", "xml", "csv", "text", "base64", "empty"] = "json"


class HttpCaller(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send one request. Raises engine.errors.RequestError subclasses (never library errors):
        ConnectFailedError / RequestTimeoutError (retryable), EgressDeniedError,
        ResponseTooLargeError, RequestBodyTooLargeError, InvalidUrlError, ResponseDecodeError."""
        ...


# --- Rate limits ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    requests: int
    window_secs: float
    scope: RateLimitScope = "per_config"
    priority: int = 0


@dataclass(frozen=True, slots=True)
class RateLimitSubject:
    """Who is asking: the identifiers a rule's scope picks from to build its bucket key."""

    tenant_id: str
    config_id: str
    plan_key: str
    endpoint: str  # "METHOD host/path-template", stable across item ids
    integration: str = ""  # the "global" scope is shared by every tenant and config of it


class RateLimiter(Protocol):
    async def acquire(
        self, rules: Sequence[RateLimitRule], subject: RateLimitSubject, *, max_wait_s: float
    ) -> float:
        """Wait until every rule admits one more request, then count it. Returns the seconds
        waited. Raises engine.errors.RateLimitExceededError if the wait would exceed max_wait_s."""
        ...

    async def observe(self, subject: RateLimitSubject, status_code: int, headers: Mapping[str, str]) -> None:
        """Learn from a response's rate-limit headers (X-RateLimit-*, RateLimit, Retry-After)."""
        ...


# --- Auth -----------------------------------------------------------------------------------


class AuthProvider(Protocol):
    async def values(self, *, refresh: bool = False) -> Mapping[str, JsonValue]:
        """The ``auth`` template variables (e.g. {"token": ...}). refresh=True after a 401."""
        ...


# --- Emission -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionMeta:
    """Identifies one execution on every message it emits."""

    tenant_id: str
    integration: str
    plan_key: str
    config_id: str
    execution_id: str
    traceparent: str = ""
    tracestate: str = ""


@dataclass(frozen=True, slots=True)
class ResponseMessage:
    """The body of an api-responses / api-errors message, in the spec's format (already redacted)."""

    step_path: str
    timestamp: str  # RFC 3339, UTC
    request_url: str
    request_method: str
    request_headers: Mapping[str, str]
    status_code: int
    response_body: JsonValue
    response_headers: Mapping[str, str]
    response_size: int
    duration_ms: float
    extracted_data: Mapping[str, JsonValue]
    sequence: int  # per execution, from 1; lets consumers deduplicate after a retry
    trace_id: str = ""
    span_id: str = ""
    error: str | None = None  # why it went to api-errors, when it did


@dataclass(frozen=True, slots=True)
class ExecutionStats:
    requests: int = 0
    records: int = 0
    bytes: int = 0
    messages: int = 0
    duration_ms: float = 0.0
    rate_limited_seconds: float = 0.0
    entity_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    type: Literal["execution.started", "execution.completed"]
    timestamp: str
    status: str | None = None
    stats: ExecutionStats | None = None
    error: str | None = None


class ResponseSink(Protocol):
    async def emit_response(self, meta: ExecutionMeta, message: ResponseMessage, *, error: bool) -> None:
        """Publish to api-responses (error=False) or api-errors (error=True). Messages larger than
        the broker accepts are delivered whole (compressed or in numbered parts), never dropped.
        Raises engine.errors.EmitError if the broker cannot take it within the producer's budget."""
        ...

    async def emit_event(self, meta: ExecutionMeta, event: ExecutionEvent) -> None: ...

    async def flush(self) -> None:
        """Return once everything emitted so far is acknowledged by the broker."""
        ...


# --- One execution ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    status: ExecutionStatus
    stats: ExecutionStats
    error: str | None = None
    # The persisted context after context_updates; the caller stores it only on success.
    context: Mapping[str, JsonValue] = field(default_factory=dict)
    # With status "rate_limited": how long the limiter said the wait would be, in seconds.
    resume_after_s: float | None = None
