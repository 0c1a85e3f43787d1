"""The one table from Orchid's domain errors to gRPC status codes, and the decorator that applies it.

Database driver errors are translated here too: a lost or refused connection is UNAVAILABLE (the
client may retry), never INTERNAL. This is the only module that knows SQLAlchemy's and asyncpg's
connection errors.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]
import grpc
import sqlalchemy.exc

from engine.errors import (
    DependencyUnavailableError,
    DuplicateResourceError,
    InvalidArgumentError,
    OrchidError,
    PermissionDeniedError,
    PlanValidationError,
    PreconditionFailedError,
    RateLimitExceededError,
    ResourceNotFoundError,
    TenantMismatchError,
    UnauthenticatedError,
)

__all__ = ["INTERNAL_MESSAGE", "STATUS_BY_ERROR", "maps_errors", "status_for"]

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error"

# Looked up along the exception's MRO, so a subclass maps like its nearest listed ancestor
# (TenantMismatchError is a PermissionDeniedError; PlanValidationError an InvalidArgumentError).
STATUS_BY_ERROR: dict[type[OrchidError], grpc.StatusCode] = {
    ResourceNotFoundError: grpc.StatusCode.NOT_FOUND,
    DuplicateResourceError: grpc.StatusCode.ALREADY_EXISTS,
    TenantMismatchError: grpc.StatusCode.PERMISSION_DENIED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    PreconditionFailedError: grpc.StatusCode.FAILED_PRECONDITION,
    PlanValidationError: grpc.StatusCode.INVALID_ARGUMENT,  # the message lists every field path
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    DependencyUnavailableError: grpc.StatusCode.UNAVAILABLE,
    RateLimitExceededError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

# Connection-level failures of the database, as the drivers raise them. Query errors (a
# constraint, a syntax error) are not here: repositories translate those, or they are bugs.
_DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within pool_timeout
    sqlalchemy.exc.DisconnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused / reset before the driver wrapped it
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status and the client-facing message for ``exc``. INTERNAL never carries details."""
    if isinstance(exc, OrchidError):
        for cls in type(exc).__mro__:
            code = STATUS_BY_ERROR.get(cls)
            if code is not None:
                return code, exc.message
        return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
    if _is_db_unavailable(exc):
        return grpc.StatusCode.UNAVAILABLE, "database unavailable"
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def _is_db_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _DB_UNAVAILABLE)


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def maps_errors(handler: Handler) -> Handler:
    """Turn exceptions escaping a servicer method into a gRPC status via STATUS_BY_ERROR.

    An error mapped to INTERNAL is logged with its traceback; the client sees only "internal
    error". ``context.abort()`` from the method itself passes through unchanged, and so does
    CancelledError (not an Exception).
    """

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("unhandled error in %s", handler.__qualname__)
            elif code is grpc.StatusCode.UNAVAILABLE:
                log.warning("%s: dependency unavailable: %s", handler.__qualname__, exc)
            await context.abort(code, message)

    return cast(Handler, wrapper)
