"""One step instance: its ``while`` loop, the checks on each page, emission, context and fan-out.

Per page, in order: send (engine.fetch) -> check the page is JSON when the step reads its fields
-> same-page check -> ``abort_when`` -> ``extract`` -> publish -> ``context_updates`` -> sub-steps
-> ``break_when`` -> ``while``. "Sub-steps" queues the page's items to the step's fan-out pools
(engine.fanout.FanOut, one per sub-step, shared by all the step's pages): the loop goes on to the
next page while they run, and the step ends only once every item is done.

Pagination fails loudly instead of spinning: a request identical to the previous iteration's (the
API handed back the same cursor), a response body identical to the previous page's, or more than
MAX_LOOPS iterations each end the execution with an error naming the step.

Template variables: ``config``, ``auth``, ``context``; ``prev`` (the previous iteration's response,
null on the first); in sub-steps ``parent`` (the parent step's response, with its own ``item`` and
``parent``) and ``item``; in conditions, context_updates and extract also ``response``. A response
variable is {status_code, headers, body, url, extracted} plus the step's ``extract`` results merged
in, so later pages and sub-steps read an extracted ``x`` as ``prev.x`` / ``parent.x`` (or
``parent.extracted.x``); validation keeps extract names off the reserved fields.
"""

from __future__ import annotations

import asyncio
import itertools

import orjson

from engine.errors import (
    EmitError,
    ExecutionAbortedError,
    ExecutionTimeoutError,
    MaxLoopsExceededError,
    OrchidError,
    PaginationLoopError,
    ResponseDecodeError,
)
from engine.fanout import FanOut, Scope, first_error
from engine.fetch import Exchange, ReportedError, fail, fetch
from engine.plan import Step
from engine.ports import HttpRequest, HttpResponse, JsonValue
from engine.request_builder import RequestIdentity, build_request, full_url, request_identity
from engine.state import Execution

__all__ = ["Scope", "run_step"]

# Errors that end the whole execution rather than a step: not published as a step's failure.
_EXECUTION_LEVEL = (ReportedError, ExecutionTimeoutError, EmitError)


async def run_step(ex: Execution, step: Step, scope: Scope, collect: bool = False) -> list[JsonValue]:
    """Run the step to the end of its loop. With ``collect`` (fan-out page mode) the response
    bodies are returned instead of published. Failures are published on api-errors and raised
    as ReportedError."""
    return await _StepRun(ex, step, scope, collect).run()


_NO_PAGE = object()


def _canonical(body: JsonValue) -> bytes | None:
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None


def _same_page(body: JsonValue, previous: JsonValue) -> bool:
    """Whether two page bodies are the same JSON. ``==`` settles almost every call at the first
    difference; equal-looking bodies are confirmed on their canonical form (``1 == True`` in
    Python, not in JSON)."""
    if previous is _NO_PAGE or body != previous:
        return False
    canonical = _canonical(body)
    return canonical is not None and canonical == _canonical(previous)


class _StepRun:
    def __init__(self, ex: Execution, step: Step, scope: Scope, collect: bool) -> None:
        self.ex = ex
        self.step = step
        self.scope = scope
        self.collect = collect
        self.outputs: list[JsonValue] = []
        self.prev: JsonValue = None
        self.last_identity: RequestIdentity | None = None
        self.last_body: JsonValue = _NO_PAGE
        self.fanouts: list[FanOut] = []
        self.request: HttpRequest | None = None
        self.response: HttpResponse | None = None

    async def run(self) -> list[JsonValue]:
        try:
            if self.step.sub_steps:
                await self._loop_with_fanout()
            else:
                await self._loop()
        except _EXECUTION_LEVEL:
            raise
        except OrchidError as exc:
            text = exc.message if exc.message.startswith("step ") else f"step {self.step.path}: {exc.message}"
            raise await fail(self.ex, self.step, self.request, self.response, exc, text) from exc
        return self.outputs

    def _render(self) -> tuple[HttpRequest, dict[str, JsonValue]]:
        ex = self.ex
        variables: dict[str, JsonValue] = {
            "config": ex.config,
            "auth": ex.auth,
            "context": ex.context.values,
            "prev": self.prev,
            "parent": self.scope.parent,
            "item": self.scope.item,
            "response": None,
        }
        return build_request(self.step, variables, max_body_bytes=ex.limits.max_request_body_size), variables

    async def _loop_with_fanout(self) -> None:
        """The loop, with one FanOut per sub-step whose workers overlap the parent's pages; done
        when the loop is over and every item is. Any failure cancels everything else at once."""
        try:
            async with asyncio.TaskGroup() as group:
                self.fanouts = [
                    FanOut(self.ex, sub, index, run_step, group)
                    for index, sub in enumerate(self.step.sub_steps)
                ]
                await self._loop()
                for fanout in self.fanouts:
                    await fanout.close()
        except BaseExceptionGroup as failed:
            raise first_error(failed) from None

    async def _loop(self) -> None:
        for iteration in itertools.count(1):
            self.ex.check_deadline()
            self.request = self.response = None
            first = self._render()
            self.request = first[0]
            self._check_same_request(first[0], iteration)
            exchange = await fetch(self.ex, self.step, self._render, first)
            if exchange is None:
                return  # ignored (already on api-errors): no next page can be derived from it
            self.request, self.response = exchange.request, exchange.response
            if not await self._page(exchange, iteration):
                return

    def _check_same_request(self, request: HttpRequest, iteration: int) -> None:
        identity = request_identity(request)
        if identity == self.last_identity:
            raise PaginationLoopError(
                f"step {self.step.path}: iteration {iteration} would repeat the request of iteration "
                f"{iteration - 1} ({request.method} {self.ex.redactor.url(full_url(request))}); "
                "the API returned the same cursor, so pagination cannot advance"
            )
        self.last_identity = identity

    def _check_page(self, response: HttpResponse, iteration: int) -> None:
        step = self.step
        if step.body_readers and not isinstance(response.body, dict | list):
            raise ResponseDecodeError(
                f"step {step.path}: {step.body_readers[0]!r} reads fields of the response body, but the "
                f"body is {response.body_format} ({type(response.body).__name__}), not a JSON object or array"
            )
        if step.while_ is None:
            return
        if _same_page(response.body, self.last_body):
            raise PaginationLoopError(
                f"step {step.path}: page {iteration} is identical to page {iteration - 1}; "
                "pagination is not advancing"
            )
        self.last_body = response.body

    async def _page(self, exchange: Exchange, iteration: int) -> bool:
        """Handle one successful response; True to request the next page."""
        ex, step = self.ex, self.step
        variables, response = exchange.variables, exchange.response
        self._check_page(response, iteration)
        if step.abort_when is not None and step.abort_when.test(variables):
            error = ExecutionAbortedError(
                f"step {step.path}: abort_when {step.abort_when.source!r} matched; execution aborted"
            )
            raise await fail(ex, step, exchange.request, response, error)
        extracted = {name: expr.search(variables) for name, expr in step.extract}
        response_var = variables["response"]
        response_var["extracted"] = extracted
        response_var.update(extracted)
        if step.emit_to_kafka and not self.collect:
            await ex.emit(step.path, exchange.request, response, extracted=extracted)
        if self.collect:
            self.outputs.append(response.body)
        ex.context.apply(step.context_updates, variables)
        variables["context"] = ex.context.values
        if self.fanouts:
            for fanout in self.fanouts:
                await fanout.submit(exchange, self.scope)
            # Let the workers just handed items send them before this loop's next request.
            await asyncio.sleep(0)
        return self._continues(exchange, iteration)

    def _continues(self, exchange: Exchange, iteration: int) -> bool:
        step, variables = self.step, exchange.variables
        if step.break_when is not None and step.break_when.test(variables):
            return False
        if step.while_ is None or not step.while_.test(variables):
            return False
        max_loops = min(step.max_loops or self.ex.limits.max_loops, self.ex.limits.max_loops)
        if iteration >= max_loops:
            raise MaxLoopsExceededError(
                f"step {step.path}: while {step.while_.source!r} still holds after {iteration} iterations; "
                f"the limit is {max_loops} (MAX_LOOPS or the step's max_loops)"
            )
        self.prev = variables["response"]
        return True
