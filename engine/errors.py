"""Orchid's error vocabulary, shared by the engine, the adapters, the worker and the server.

Every error names the condition it reports and says whether trying again can help
(``retryable``). Adapters translate library errors into these at their boundary, so nothing above
them ever catches an httpx, aiokafka or jmespath exception. The server maps the domain errors at the
bottom of this module to gRPC status codes by class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "ConnectFailedError",
    "ContextLimitError",
    "DependencyUnavailableError",
    "DuplicateResourceError",
    "EgressDeniedError",
    "EmitError",
    "ExecutionAbortedError",
    "ExecutionTimeoutError",
    "FieldError",
    "HttpStatusError",
    "InvalidArgumentError",
    "InvalidUrlError",
    "MaxLoopsExceededError",
    "OrchidError",
    "PaginationLoopError",
    "PermissionDeniedError",
    "PlanValidationError",
    "PreconditionFailedError",
    "RateLimitExceededError",
    "RequestBodyTooLargeError",
    "RequestError",
    "RequestTimeoutError",
    "ResourceNotFoundError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "TemplateError",
    "TenantMismatchError",
    "UnauthenticatedError",
]


class OrchidError(Exception):
    """Root of every error Orchid raises on purpose."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- Plan validation ------------------------------------------------------------------------


class InvalidArgumentError(OrchidError):
    """The caller sent something malformed (gRPC INVALID_ARGUMENT)."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a plan, located by its path, e.g. ``step.sub_steps[0].iterate_over``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PlanValidationError(InvalidArgumentError):
    """A plan failed validation. Carries every problem found, not just the first."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        count = len(self.errors)
        lines = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"invalid plan ({count} error{'s' if count != 1 else ''}):\n{lines}")


# --- One request ----------------------------------------------------------------------------


class RequestError(OrchidError):
    """Sending one HTTP request failed before a usable response arrived."""


class ConnectFailedError(RequestError):
    """The connection could not be opened (DNS, refused, reset, TLS)."""

    retryable = True


class RequestTimeoutError(RequestError):
    """The request did not complete within its timeout."""

    retryable = True


class EgressDeniedError(RequestError):
    """The destination is not allowed (private, loopback, link-local... and not allow-listed)."""


class ResponseTooLargeError(RequestError):
    """The response body exceeds MAX_RESPONSE_SIZE."""


class RequestBodyTooLargeError(RequestError):
    """The rendered request body exceeds MAX_REQUEST_BODY_SIZE."""


class InvalidUrlError(RequestError):
    """The rendered URL is not an absolute http(s) URL."""


class ResponseDecodeError(RequestError):
    """The response body could not be decoded as its content type says."""


class HttpStatusError(RequestError):
    """The API answered with a status the step does not accept, and retrying did not help."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def retryable_status(self) -> bool:
        return self.status_code == 429 or self.status_code >= 500


# --- Rate limits ----------------------------------------------------------------------------


class RateLimitExceededError(OrchidError):
    """Waiting for a rate-limit slot would take longer than the allowed maximum wait."""

    def __init__(self, message: str, *, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.wait_s = wait_s


# --- Execution ------------------------------------------------------------------------------


class TemplateError(OrchidError):
    """A template or JMESPath expression could not be compiled or evaluated."""


class PaginationLoopError(OrchidError):
    """Pagination is not advancing: the same cursor or the same page came back twice."""


class MaxLoopsExceededError(OrchidError):
    """A ``while`` loop ran more than MAX_LOOPS iterations."""


class ContextLimitError(OrchidError):
    """The persisted context exceeds its per-field or total size limit."""


class ExecutionTimeoutError(OrchidError):
    """The execution ran longer than MAX_EXECUTION_TIME."""


class ExecutionAbortedError(OrchidError):
    """A step's ``abort_on`` status or ``abort_when`` condition ended the execution."""


class EmitError(OrchidError):
    """The broker did not accept a message within the producer's budget."""

    retryable = True


# --- Domain errors the server maps to gRPC status codes -------------------------------------


class ResourceNotFoundError(OrchidError):
    """gRPC NOT_FOUND."""


class DuplicateResourceError(OrchidError):
    """gRPC ALREADY_EXISTS."""


class PermissionDeniedError(OrchidError):
    """gRPC PERMISSION_DENIED."""


class TenantMismatchError(PermissionDeniedError):
    """The resource belongs to another tenant than the caller's (gRPC PERMISSION_DENIED)."""


class PreconditionFailedError(OrchidError):
    """gRPC FAILED_PRECONDITION (e.g. a stale version, a disabled plan)."""


class UnauthenticatedError(OrchidError):
    """gRPC UNAUTHENTICATED."""


class DependencyUnavailableError(OrchidError):
    """A dependency (database, Redis, broker) is unreachable (gRPC UNAVAILABLE)."""

    retryable = True
