"""Plan validation: a plan document in, a compiled engine.plan.Plan out, or every problem at once.

``validate_plan(document) -> Plan`` is the one entry point, used by the server on create/update
(after converting the proto to a dict) and by the worker before running. It compiles every template
and JMESPath expression once, so a plan that validates never fails to parse at run time, and it
reports ALL problems, each with its path: ``step.sub_steps[0].iterate_over: invalid JMESPath ...``.

Body encoding follows the proto's Step.body: an object or array body is sent as JSON (its string
leaves are templates); an object is sent as form data when the step's Content-Type header is
application/x-www-form-urlencoded; a string body is a template sent as is ("raw").

Documents converted from proto3 messages carry "" for unset strings: optional string fields that
are "" count as absent (``url`` and ``key`` stay required).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from engine.conditions import Expr
from engine.errors import FieldError, PlanValidationError
from engine.plan import (
    DEFAULT_RETRY_STATUSES,
    HTTP_METHODS,
    BodyFormat,
    Plan,
    RateLimitSpec,
    RetryPolicy,
    Step,
)
from engine.ports import RateLimitRule
from engine.templates import JsonTemplate, Template, compile_json_template, compile_template
from engine.validate_fields import FANOUT_ROOTS, REQUEST_ROOTS, FieldChecker, describe
from settings.model import ExecutionLimits

__all__ = ["PLAN_FIELDS", "RESERVED_EXTRACT_NAMES", "STEP_FIELDS", "validate_plan", "validate_plan_json"]

PLAN_FIELDS = frozenset(
    {"key", "integration", "wait_seconds", "enabled", "auth_flow_id", "description", "step", "rate_limits"}
)
STEP_FIELDS = frozenset(
    {
        "name", "url", "method", "headers", "params", "body", "max_loops",
        "while", "abort_when", "retry_when", "break_when", "emit_to_kafka",
        "abort_on", "ignore_on", "retry", "sub_steps", "iterate_over", "concurrency",
        "fanout_emit_mode", "rate_limits", "context_updates", "extract", "timeout_seconds",
    }
)  # fmt: skip
RETRY_FIELDS = frozenset({"max_attempts", "backoff", "max_backoff_seconds", "retry_on"})
RATE_LIMIT_FIELDS = frozenset({"requests", "window_secs", "scope", "priority", "max_wait_secs"})

_KEY = re.compile(r"^[a-z0-9_-]{1,128}$")  # the proto's rule for Plan.key
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # no dots: names are joined by dots in step_path
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FORM_TYPE = "application/x-www-form-urlencoded"
_MAX_ATTEMPTS = 20

# Fields of the response variable; an extract name may not shadow them (extracted values are also
# merged into the response variable: response.x, prev.x, parent.x).
RESERVED_EXTRACT_NAMES = frozenset({"status_code", "headers", "body", "url", "extracted", "item", "parent"})


def validate_plan(document: Mapping[str, Any], *, limits: ExecutionLimits | None = None) -> Plan:
    """Validate and compile a plan document. Raises PlanValidationError listing every problem."""
    validator = _Validator(limits or ExecutionLimits())
    plan = validator.plan(document)
    if validator.errors or plan is None:
        raise PlanValidationError(validator.errors or [FieldError("", "invalid plan")])
    return plan


def validate_plan_json(text: str | bytes, *, limits: ExecutionLimits | None = None) -> Plan:
    """Validate a plan given as JSON text."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PlanValidationError([FieldError("", f"not valid JSON: {exc}")]) from exc
    return validate_plan(document, limits=limits)


_BODY_FIELD = re.compile(r"\bresponse\s*\.\s*body\s*[.\[]")


def _body_readers(step: Step) -> tuple[str, ...]:
    exprs = [step.while_, step.abort_when, step.retry_when, step.break_when]
    exprs += [expr for _, expr in step.context_updates + step.extract]
    exprs += [sub.iterate_over for sub in step.sub_steps]
    return tuple(e.source for e in exprs if e is not None and _BODY_FIELD.search(e.source))


class _Validator(FieldChecker):
    # --- plan ---------------------------------------------------------------------------------

    def plan(self, document: Any) -> Plan | None:
        data = self.obj(document, "", PLAN_FIELDS)
        if data is None:
            return None
        key = self.string(data, "key", "key", pattern=_KEY, required=True)
        integration = self.string(data, "integration", "integration") or ""
        wait = self.number(data, "wait_seconds", "wait_seconds", minimum=1, integer=True)
        enabled = self.boolean(data, "enabled", "enabled", False)
        auth_flow_id = self.string(data, "auth_flow_id", "auth_flow_id")
        description = self.string(data, "description", "description") or ""
        rate_limits = self.rate_limits(data.get("rate_limits"), "rate_limits")
        step: Step | None = None
        if "step" not in data:
            self.error("step", "is required")
        else:
            step = self.step(data["step"], "step", depth=0, step_path="")
        if key is None or step is None:
            return None
        return Plan(
            key=key, step=step, integration=integration, wait_seconds=wait, enabled=enabled,
            auth_flow_id=auth_flow_id, description=description, rate_limits=rate_limits, source=document,
        )  # fmt: skip

    def rate_limits(self, value: Any, path: str) -> tuple[RateLimitSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(path, f"must be an array, got {describe(value)}")
            return ()
        specs: list[RateLimitSpec] = []
        for index, raw in enumerate(value):
            where = f"{path}[{index}]"
            data = self.obj(raw, where, RATE_LIMIT_FIELDS)
            if data is None:
                continue
            requests = self.number(data, "requests", f"{where}.requests", minimum=1, integer=True)
            window = self.number(data, "window_secs", f"{where}.window_secs", minimum=0.001)
            priority = self.number(
                data, "priority", f"{where}.priority", minimum=-1000, maximum=1000, integer=True
            )
            max_wait = self.number(data, "max_wait_secs", f"{where}.max_wait_secs", minimum=0)
            scope = data.get("scope", "per_config")
            if scope not in ("per_config", "per_endpoint", "global"):
                self.error(
                    f"{where}.scope", f"must be one of per_config, per_endpoint, global, got {scope!r}"
                )
                continue
            for field_name in ("requests", "window_secs"):
                if field_name not in data:
                    self.error(f"{where}.{field_name}", "is required")
            if requests is None or window is None:
                continue
            rule = RateLimitRule(requests, float(window), scope, priority or 0)
            specs.append(RateLimitSpec(rule, None if max_wait is None else float(max_wait)))
        return tuple(specs)

    def retry(self, value: Any, path: str) -> RetryPolicy:
        if value is None:
            return RetryPolicy()
        data = self.obj(value, path, RETRY_FIELDS)
        if data is None:
            return RetryPolicy()
        attempts = self.number(data, "max_attempts", f"{path}.max_attempts", minimum=1, maximum=_MAX_ATTEMPTS,
                               integer=True)  # fmt: skip
        backoff = self.number(data, "max_backoff_seconds", f"{path}.max_backoff_seconds", minimum=0.001,
                              maximum=self.limits.max_retry_backoff_s)  # fmt: skip
        if data.get("backoff", "fibonacci") != "fibonacci":
            self.error(f"{path}.backoff", f"only 'fibonacci' is supported, got {data.get('backoff')!r}")
        # An empty list is what proto3 gives for "not set", so it means the default too.
        retry_on = self.statuses(data.get("retry_on"), f"{path}.retry_on")
        return RetryPolicy(
            max_attempts=attempts if attempts is not None else 3,
            max_backoff_s=None if backoff is None else float(backoff),
            retry_on=retry_on or DEFAULT_RETRY_STATUSES,
        )

    # --- steps --------------------------------------------------------------------------------

    def body(self, data: Mapping[str, Any], path: str, allowed: frozenset[str],
             headers: Mapping[str, Any]) -> tuple[JsonTemplate | Template | None, BodyFormat]:  # fmt: skip
        value = data.get("body")
        content_type = next((str(v) for k, v in headers.items() if str(k).lower() == "content-type"), "")
        body_format: BodyFormat = "raw" if isinstance(value, str) else "json"
        if _FORM_TYPE in content_type.lower():
            if value is not None and not isinstance(value, Mapping):
                self.error(f"{path}.body", f"a form body must be an object, got {describe(value)}")
                return None, body_format
            body_format = "form"
        if value is None:
            return None, body_format
        if body_format == "raw":
            return self.template(value, f"{path}.body", allowed), body_format
        problems: list[tuple[str, str]] = []
        compiled = compile_json_template(value, f"{path}.body", problems)
        for where, message in problems:
            self.error(where, message)
        for template in compiled.templates:
            self.roots(template.roots, f"{path}.body", allowed)
        return compiled, body_format

    def step(self, value: Any, path: str, *, depth: int, step_path: str, index: int = 0) -> Step | None:
        data = self.obj(value, path, STEP_FIELDS)
        if data is None:
            return None
        if depth > self.limits.max_nesting_depth:
            self.error(
                path, f"sub-steps nest {depth} levels deep; the limit is {self.limits.max_nesting_depth}"
            )
            return None
        name = self.string(data, "name", f"{path}.name", pattern=_NAME)
        label = name or str(index)  # the proto: "defaults to the step's position, e.g. 0 or 0.1"
        own_path = f"{step_path}.{label}" if step_path else label
        request_roots = REQUEST_ROOTS | (FANOUT_ROOTS if depth > 0 else frozenset())
        response_roots = request_roots | {"response"}
        method = data.get("method", "GET")
        if method not in HTTP_METHODS:
            self.error(f"{path}.method", f"must be one of {', '.join(HTTP_METHODS)}, got {method!r}")
        url = self.template(data.get("url"), f"{path}.url", request_roots) if data.get("url") else None
        if not data.get("url"):
            self.error(f"{path}.url", "is required")
        headers = self.template_map(data.get("headers"), f"{path}.headers", request_roots)
        for header, _ in headers:
            if not _HEADER.match(header):
                self.error(f"{path}.headers.{header}", "is not a valid header name")
        raw_headers = data.get("headers")
        if not isinstance(raw_headers, Mapping):
            raw_headers = {}
        body, body_format = self.body(data, path, request_roots, raw_headers)
        fanout = self.fanout(data, path, depth)
        sub_steps = self.sub_steps(data.get("sub_steps"), path, depth, own_path)
        step = Step(
            url=url or compile_template("invalid"),
            path=own_path,
            depth=depth,
            name=name,
            method=method if method in HTTP_METHODS else "GET",
            headers=headers,
            params=self.template_map(data.get("params"), f"{path}.params", request_roots),
            body=body,
            body_format=body_format,
            while_=self.expr(data.get("while"), f"{path}.while", response_roots),
            abort_when=self.expr(data.get("abort_when"), f"{path}.abort_when", response_roots),
            retry_when=self.expr(data.get("retry_when"), f"{path}.retry_when", response_roots),
            break_when=self.expr(data.get("break_when"), f"{path}.break_when", response_roots),
            emit_to_kafka=self.boolean(data, "emit_to_kafka", f"{path}.emit_to_kafka", True),
            abort_on=self.statuses(data.get("abort_on"), f"{path}.abort_on"),
            ignore_on=self.statuses(data.get("ignore_on"), f"{path}.ignore_on"),
            retry=self.retry(data.get("retry"), f"{path}.retry"),
            sub_steps=sub_steps,
            rate_limits=self.rate_limits(data.get("rate_limits"), f"{path}.rate_limits"),
            context_updates=self.expr_map(
                data.get("context_updates"), f"{path}.context_updates", response_roots
            ),
            extract=self.extract(data.get("extract"), f"{path}.extract", response_roots),
            timeout_s=self.timeout(data, path),
            max_loops=self.number(
                data, "max_loops", f"{path}.max_loops", minimum=1, maximum=self.limits.max_loops, integer=True
            ),
            **fanout,
        )
        self.check_overlap(step, path)
        return replace(step, body_readers=_body_readers(step))

    def extract(self, value: Any, path: str, allowed: frozenset[str]) -> tuple[tuple[str, Expr], ...]:
        extract = self.expr_map(value, path, allowed)
        for name, _ in extract:
            if name in RESERVED_EXTRACT_NAMES:
                self.error(
                    f"{path}.{name}", f"{name!r} is a field of the response variable; pick another name"
                )
        return extract

    def timeout(self, data: Mapping[str, Any], path: str) -> float | None:
        value = self.number(data, "timeout_seconds", f"{path}.timeout_seconds", minimum=0.001,
                            maximum=self.limits.max_execution_time_s)  # fmt: skip
        return None if value is None else float(value)

    def check_overlap(self, step: Step, path: str) -> None:
        both = step.abort_on & step.ignore_on
        if both:
            codes = ", ".join(str(code) for code in sorted(both))
            self.error(f"{path}.ignore_on", f"status {codes} is also in abort_on; a status can do only one")

    def fanout(self, data: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        """iterate_over, concurrency and fanout_emit_mode: required/allowed only on sub-steps."""
        out: dict[str, Any] = {"concurrency": self.limits.default_concurrency}
        if depth == 0:
            for key in ("iterate_over", "concurrency", "fanout_emit_mode"):
                if key in data:
                    self.error(f"{path}.{key}", "is only valid on a sub-step")
            return out
        # iterate_over reads the parent step's variables, after the parent's response arrived.
        parent_roots = REQUEST_ROOTS | {"response"} | (FANOUT_ROOTS if depth > 1 else frozenset())
        if data.get("iterate_over") is None:
            self.error(f"{path}.iterate_over", "is required on a sub-step (the items to fan out over)")
        out["iterate_over"] = self.expr(data.get("iterate_over"), f"{path}.iterate_over", parent_roots)
        concurrency = self.number(data, "concurrency", f"{path}.concurrency", minimum=1, maximum=10_000,
                                  integer=True)  # fmt: skip
        if concurrency is not None:
            out["concurrency"] = concurrency
        mode = data.get("fanout_emit_mode", "record")
        if mode not in ("record", "page"):
            self.error(f"{path}.fanout_emit_mode", f"must be record or page, got {mode!r}")
        else:
            out["fanout_emit_mode"] = mode
        return out

    def sub_steps(self, value: Any, path: str, depth: int, own_path: str) -> tuple[Step, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(f"{path}.sub_steps", f"must be an array of steps, got {describe(value)}")
            return ()
        out: list[Step] = []
        labels: set[str] = set()
        for index, raw in enumerate(value):
            where = f"{path}.sub_steps[{index}]"
            sub = self.step(raw, where, depth=depth + 1, step_path=own_path, index=index)
            if sub is None:
                continue
            if sub.path in labels:
                self.error(f"{where}.name", f"duplicate step name {sub.name!r}")
            labels.add(sub.path)
            out.append(sub)
        return tuple(out)
