"""Fan-out: run a sub-step once per item of the parent's page, with bounded concurrency and memory.

A fixed pool of ``concurrency`` workers pulls items from one shared iterator; no task is created
per item, and in "record" mode each item's responses go to the sink as they arrive, so a 100,000-item
fan-out holds ``concurrency`` tasks and in-flight responses, never 100,000.

"page" mode publishes one message per parent page instead: its response_body is the array of the
page's items, each enriched with the sub-step's output under the sub-step's name (or
``sub_steps_<index>`` when unnamed): the response body, or the list of bodies when the sub-step
paginates with ``while``, or null when the item's response was ignored. Memory is bounded by the
page, which is already in memory as the parent's response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from engine.errors import OrchidError, TemplateError
from engine.fetch import Exchange, ReportedError
from engine.plan import Step
from engine.ports import JsonValue
from engine.state import Execution

__all__ = ["RunStep", "Scope", "fan_out", "run_pool"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a step instance runs: its parent's variable and its item (None at the top)."""

    parent: JsonValue = None
    item: JsonValue = None


# run_step(ex, step, scope, collect) -> the response bodies when collect is true
RunStep = Callable[[Execution, Step, Scope, bool], Awaitable[list[JsonValue]]]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to surface from a failed pool: the one already reported, else the first."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    for kinds in ((ReportedError,), (OrchidError,)):
        for leaf in leaves:
            if isinstance(leaf, kinds):
                return leaf
    return leaves[0]


async def run_pool(items: Sequence[T], work: Callable[[int, T], Awaitable[None]], concurrency: int) -> None:
    """Call ``work(index, item)`` for every item with at most ``concurrency`` running at once.
    The first failure cancels the other workers and is raised as itself (not as a group)."""
    iterator = enumerate(items)

    async def worker() -> None:
        # next() on the shared iterator never awaits, so two workers never take the same item
        for index, item in iterator:
            await work(index, item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(items))):
                group.create_task(worker())
    except BaseExceptionGroup as failed:
        raise _first_error(failed) from None


def _items(sub: Step, parent: Exchange) -> list[JsonValue]:
    assert sub.iterate_over is not None  # validation requires it on every sub-step
    items = sub.iterate_over.search(parent.variables)
    if items is None:
        return []  # a page without the array: nothing to fan out over
    if not isinstance(items, list):
        raise TemplateError(
            f"step {sub.path}: iterate_over {sub.iterate_over.source!r} produced "
            f"{type(items).__name__}, not an array"
        )
    return items


def _enrich(item: JsonValue, key: str, output: JsonValue) -> JsonValue:
    if isinstance(item, dict):
        return {**item, key: output}
    return {"item": item, key: output}


async def fan_out(
    ex: Execution, sub: Step, index: int, parent: Exchange, scope: Scope, run_step: RunStep
) -> None:
    """Run sub-step ``sub`` over the items of the parent's response ``parent``."""
    items = _items(sub, parent)
    parent_var: dict[str, JsonValue] = {
        **parent.variables["response"],
        "item": scope.item,
        "parent": scope.parent,
    }
    if sub.fanout_emit_mode == "record":

        async def record(_: int, item: JsonValue) -> None:
            await run_step(ex, sub, Scope(parent_var, item), False)

        await run_pool(items, record, sub.concurrency)
        return

    outputs: list[JsonValue] = [None] * len(items)

    async def page(position: int, item: JsonValue) -> None:
        bodies = await run_step(ex, sub, Scope(parent_var, item), True)
        outputs[position] = bodies if sub.while_ is not None else (bodies[0] if bodies else None)

    await run_pool(items, page, sub.concurrency)
    if sub.emit_to_kafka:
        key = sub.name or f"sub_steps_{index}"
        enriched = [_enrich(item, key, output) for item, output in zip(items, outputs, strict=True)]
        await ex.emit(
            sub.path, parent.request, parent.response, body=enriched, size=len(orjson.dumps(enriched))
        )
