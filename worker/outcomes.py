"""What to do with a finished attempt: pure decisions, no I/O.

- success, aborted (the plan said stop) and cancelled are final as they are;
- failed is retried with Fibonacci backoff until ``max_attempts`` attempts failed, then the
  execution is failed for good and dead-lettered (reason ``retries_exhausted``);
- a job that cannot even start (plan deleted, definition invalid) is dead-lettered at once;
- a job whose workers keep vanishing (``max_deliveries`` lost attempts) is dead-lettered as
  ``deliveries_exhausted`` instead of killing worker after worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.backoff import backoff_delay
from store.records import DlqReason, ErrorInfo, ExecutionStatus

__all__ = ["DeadLetter", "Decision", "Finish", "Retry", "decide", "error_for"]

FinalStatus = ExecutionStatus


@dataclass(frozen=True, slots=True)
class Finish:
    status: ExecutionStatus


@dataclass(frozen=True, slots=True)
class Retry:
    attempt: int  # the retry attempt to run next
    due_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: DlqReason


Decision = Finish | Retry | DeadLetter


def decide(
    status: ExecutionStatus,
    *,
    attempt: int,
    max_attempts: int,
    now: datetime,
    backoff_cap_s: float,
    rand: Callable[[], float],
) -> Decision:
    """Finish, retry (when and as which attempt) or dead-letter an attempt that ended ``status``."""
    if status != "failed":
        return Finish(status)
    if attempt >= max_attempts:
        return DeadLetter("retries_exhausted")
    delay = backoff_delay(attempt, cap_s=backoff_cap_s, rand=rand)
    return Retry(attempt=attempt + 1, due_at=now + timedelta(seconds=delay))


def error_for(status: ExecutionStatus, message: str | None) -> ErrorInfo | None:
    """The ErrorInfo recorded for an outcome (None for a success)."""
    if status == "success":
        return None
    code = {"failed": "execution_failed", "aborted": "aborted", "cancelled": "cancelled"}.get(status, status)
    return ErrorInfo(code=code, message=message or status)
