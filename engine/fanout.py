"""Fan-out: run a sub-step once per item of the parent's pages, with bounded concurrency and memory.

One ``FanOut`` per sub-step per parent step run: a pool of at most ``concurrency`` workers SHARED
by all the parent's pages, fed through a bounded queue (``concurrency`` slots). The parent keeps
paginating while items are in flight and blocks only when the queue is full, so with 20 items per
page and concurrency 50 the pool still runs 50 items at once (the old per-page pool ran 20 and
waited for the slowest before the next page). No task is created per item: a 100,000-item
fan-out holds ``concurrency`` workers, ``concurrency`` queued items and their in-flight
responses, never 100,000. The parent step ends only when all its items are done
(``FanOut.close``); workers live in the parent step run's TaskGroup, so an item failure cancels
the parent and the other workers at once and the step fails with that item's error.

"record" mode: each item's responses go to the sink as they arrive.

"page" mode publishes one message per parent page instead: its response_body is the array of the
page's items, each enriched with the sub-step's output under the sub-step's name (or
``sub_steps_<index>`` when unnamed): the response body, or the list of bodies when the sub-step
paginates with ``while``, or null when the item's response was ignored. A per-page collector
gathers the outputs; a page is published once all its items are done, and pages are published in
page order. The items held by unpublished pages are bounded (``_HELD_ITEMS_PER_WORKER`` per
worker slot): past that, the parent waits before it submits another page, so memory is bounded by
pages in flight x page size.

Sub-steps' ``context_updates`` apply as their items complete, which can now be after the parent
requested its next page.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson

from engine.errors import OrchidError, TemplateError
from engine.fetch import Exchange, ReportedError
from engine.plan import Step
from engine.ports import JsonValue
from engine.state import Execution

__all__ = ["FanOut", "RunStep", "Scope", "first_error", "run_pool"]

T = TypeVar("T")

# Page mode: unpublished pages may hold this many items per worker slot before the parent waits.
_HELD_ITEMS_PER_WORKER = 3


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a step instance runs: its parent's variable and its item (None at the top)."""

    parent: JsonValue = None
    item: JsonValue = None


# run_step(ex, step, scope, collect) -> the response bodies when collect is true
RunStep = Callable[[Execution, Step, Scope, bool], Awaitable[list[JsonValue]]]


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
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
        raise first_error(failed) from None


class _Page:
    """Page mode: one parent page's items and the sub-step outputs gathered so far."""

    __slots__ = ("items", "left", "outputs", "parent")

    def __init__(self, parent: Exchange, items: list[JsonValue]) -> None:
        self.parent = parent
        self.items = items
        self.outputs: list[JsonValue] = [None] * len(items)
        self.left = len(items)


@dataclass(frozen=True, slots=True)
class _Job:
    scope: Scope
    page: _Page | None = None  # page mode: where the output goes
    position: int = 0


class FanOut:
    """Sub-step ``sub`` over every page of one parent step run: ``submit`` each page, then
    ``close`` once the parent's loop is over. Workers are tasks of ``group``, the parent step
    run's TaskGroup, so a failing item cancels the parent at once."""

    def __init__(
        self, ex: Execution, sub: Step, index: int, run_step: RunStep, group: asyncio.TaskGroup
    ) -> None:
        self.ex = ex
        self.sub = sub
        self.key = sub.name or f"sub_steps_{index}"
        self.run_step = run_step
        self.group = group
        self.concurrency = max(1, sub.concurrency)
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=self.concurrency)
        self.workers: list[asyncio.Task[None]] = []
        self.idle = 0
        # page mode
        self.pages: deque[_Page] = deque()
        self.held = 0  # items of unpublished pages
        self.max_held = _HELD_ITEMS_PER_WORKER * self.concurrency
        self.room: asyncio.Event | None = None

    async def submit(self, parent: Exchange, scope: Scope) -> None:
        """Queue the items of one parent page; returns once they are all queued (not done)."""
        sub = self.sub
        items = _items(sub, parent)
        parent_var: dict[str, JsonValue] = {
            **parent.variables["response"],
            "item": scope.item,
            "parent": scope.parent,
        }
        page: _Page | None = None
        if sub.fanout_emit_mode == "page":
            await self._wait_for_room()
            page = _Page(parent, items)
            self.pages.append(page)
            self.held += len(items)
            if not items:
                await self._publish_done_pages()
                return
        queue = self.queue
        for position, item in enumerate(items):
            if len(self.workers) < self.concurrency and queue.qsize() >= self.idle:
                self.workers.append(self.group.create_task(self._work()))
            await queue.put(_Job(Scope(parent_var, item), page, position))

    async def close(self) -> None:
        """Wait until every submitted item is done (and every page published), then stop."""
        for _ in self.workers:
            await self.queue.put(None)
        if self.workers:
            await asyncio.wait(self.workers)
        for worker in self.workers:
            if not worker.cancelled() and (error := worker.exception()) is not None:
                raise error  # normally the TaskGroup has cancelled us already
        self.workers.clear()

    async def _work(self) -> None:
        queue, ex, sub, run_step = self.queue, self.ex, self.sub, self.run_step
        while True:
            self.idle += 1
            try:
                job = await queue.get()
            finally:
                self.idle -= 1
            if job is None:
                return
            page = job.page
            if page is None:
                await run_step(ex, sub, job.scope, False)
                continue
            bodies = await run_step(ex, sub, job.scope, True)
            page.outputs[job.position] = bodies if sub.while_ is not None else (bodies[0] if bodies else None)
            page.left -= 1
            if page.left == 0 and self.pages and self.pages[0] is page:
                await self._publish_done_pages()

    async def _wait_for_room(self) -> None:
        while self.pages and self.held >= self.max_held:
            if self.room is None:
                self.room = asyncio.Event()
            self.room.clear()
            await self.room.wait()

    async def _publish_done_pages(self) -> None:
        """Publish the finished pages at the head of the line, in page order."""
        pages, sub = self.pages, self.sub
        while pages and pages[0].left == 0:
            page = pages.popleft()
            self.held -= len(page.items)
            if self.room is not None:
                self.room.set()
            if sub.emit_to_kafka:
                key = self.key
                enriched = [
                    _enrich(item, key, output) for item, output in zip(page.items, page.outputs, strict=True)
                ]
                parent = page.parent
                await self.ex.emit(
                    sub.path, parent.request, parent.response, body=enriched, size=len(orjson.dumps(enriched))
                )


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
