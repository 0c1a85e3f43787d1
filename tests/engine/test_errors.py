"""The error vocabulary other packages depend on."""

from __future__ import annotations

import pytest

from engine import errors


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (errors.ConnectFailedError, True),
        (errors.RequestTimeoutError, True),
        (errors.EgressDeniedError, False),
        (errors.ResponseTooLargeError, False),
        (errors.RequestBodyTooLargeError, False),
        (errors.InvalidUrlError, False),
        (errors.ResponseDecodeError, False),
        (errors.RateLimitExceededError, False),
        (errors.TemplateError, False),
        (errors.PaginationLoopError, False),
        (errors.MaxLoopsExceededError, False),
        (errors.ContextLimitError, False),
        (errors.ExecutionTimeoutError, False),
        (errors.EmitError, True),
        (errors.ResourceNotFoundError, False),
        (errors.DuplicateResourceError, False),
        (errors.TenantMismatchError, False),
        (errors.PreconditionFailedError, False),
        (errors.InvalidArgumentError, False),
        (errors.UnauthenticatedError, False),
        (errors.DependencyUnavailableError, True),
    ],
)
def test_every_error_is_an_orchid_error_with_a_retryable_flag(
    cls: type[errors.OrchidError], retryable: bool
) -> None:
    error = cls("boom")
    assert isinstance(error, errors.OrchidError)
    assert cls.retryable is retryable and str(error) == "boom"


def test_request_errors_share_a_family() -> None:
    for cls in (errors.ConnectFailedError, errors.EgressDeniedError, errors.ResponseDecodeError):
        assert issubclass(cls, errors.RequestError)


def test_plan_validation_error_lists_every_field_error() -> None:
    error = errors.PlanValidationError(
        [errors.FieldError("step.url", "is required"), errors.FieldError("key", "bad")]
    )
    assert str(error) == "invalid plan (2 errors):\n  - step.url: is required\n  - key: bad"
    assert isinstance(error, errors.InvalidArgumentError)
