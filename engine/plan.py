"""The plan model: what a validated plan is, with every template and expression compiled.

Plans arrive as JSON documents (the spec's "Plan Definition Structure"). engine.validate turns one
into these values, or raises PlanValidationError listing every problem. Nothing here parses text at
run time: the runner only evaluates the compiled ``Template`` / ``Expr`` objects stored below.

Field names follow the plan JSON, except ``while`` (a Python keyword), stored as ``while_``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from engine.conditions import Expr
from engine.ports import JsonValue, RateLimitRule
from engine.templates import JsonTemplate, Template

__all__ = [
    "HTTP_METHODS",
    "BodyFormat",
    "FanoutEmitMode",
    "Plan",
    "RateLimitSpec",
    "RetryPolicy",
    "Step",
]

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
BodyFormat = Literal["json", "form", "raw"]
FanoutEmitMode = Literal["record", "page"]

# Retried when the step names no statuses of its own: the server is struggling or asks us to slow
# down. Other 4xx are the request's fault and will not get better by repeating it.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often one request is tried. ``max_attempts`` counts the first try."""

    max_attempts: int = 3
    max_backoff_s: float | None = None  # None: the deployment's MAX_RETRY_BACKOFF
    retry_on: frozenset[int] = DEFAULT_RETRY_STATUSES

    def retries_status(self, status_code: int) -> bool:
        return status_code in self.retry_on


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """A plan's rate limit: the rule the limiter enforces, and how long a request may wait."""

    rule: RateLimitRule
    max_wait_s: float | None = None  # None: the deployment's RATE_LIMIT_MAX_WAIT


@dataclass(frozen=True, slots=True)
class Step:
    """One request (repeated while ``while_`` holds), and the sub-steps fanned out per page."""

    url: Template
    path: str  # the step_path on emitted messages, e.g. "fetch_contacts.get_details"
    depth: int = 0  # 0 for the plan's step, 1 for its sub-steps...
    name: str | None = None
    method: str = "GET"
    headers: tuple[tuple[str, Template], ...] = ()
    params: tuple[tuple[str, Template], ...] = ()
    body: JsonTemplate | Template | None = None
    body_format: BodyFormat = "json"
    while_: Expr | None = None
    abort_when: Expr | None = None
    retry_when: Expr | None = None
    break_when: Expr | None = None
    emit_to_kafka: bool = True
    abort_on: frozenset[int] = frozenset()
    ignore_on: frozenset[int] = frozenset()
    retry: RetryPolicy = RetryPolicy()
    sub_steps: tuple[Step, ...] = ()
    iterate_over: Expr | None = None
    concurrency: int = 50
    fanout_emit_mode: FanoutEmitMode = "record"
    rate_limits: tuple[RateLimitSpec, ...] = ()
    context_updates: tuple[tuple[str, Expr], ...] = ()
    extract: tuple[tuple[str, Expr], ...] = ()
    timeout_s: float | None = None
    max_loops: int | None = None  # None: the deployment's MAX_LOOPS (a step may only lower it)
    # The step's response expressions (its own and its sub-steps' iterate_over) that read fields
    # inside response.body: when the body turns out not to be JSON they cannot work, and the
    # runner fails loudly instead of letting them quietly evaluate to null.
    body_readers: tuple[str, ...] = ()

    def walk(self) -> Iterator[Step]:
        """This step and every sub-step, depth first."""
        yield self
        for sub in self.sub_steps:
            yield from sub.walk()


@dataclass(frozen=True, slots=True)
class Plan:
    key: str
    step: Step
    integration: str = ""
    wait_seconds: int | None = None  # None: not scheduled, runs only when triggered
    enabled: bool = False
    auth_flow_id: str | None = None
    description: str = ""
    rate_limits: tuple[RateLimitSpec, ...] = ()
    # The document it was parsed from, for storage and round trips.
    source: Mapping[str, JsonValue] = field(default_factory=dict, compare=False, repr=False)

    def steps(self) -> Iterator[Step]:
        return self.step.walk()
