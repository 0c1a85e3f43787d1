"""Fan-out: bounded concurrency and memory, record and page emission, ordering of sequences."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from engine_fakes import FakeHttp, Harness, VirtualTime, plan_of, response

from engine.fanout import FanOut, run_pool
from engine.plan import Plan
from engine.ports import HttpRequest, HttpResponse

BASE = "https://api.example.com"


def _list_then_details(count: int, *, yields: int = 1):
    state = {"max_tasks": 0}

    async def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items"):
            return response({"items": [{"id": i} for i in range(count)]})
        state["max_tasks"] = max(state["max_tasks"], len(asyncio.all_tasks()))
        for _ in range(yields):
            await asyncio.sleep(0)
        return response({"id": int(request.url.rsplit("/", 1)[1]), "detail": True})

    return api, state


def _fanout_plan(concurrency: int, mode: str = "record", **sub):
    return plan_of(
        {
            "url": f"{BASE}/items",
            "sub_steps": [
                {
                    "name": "detail",
                    "iterate_over": "response.body.items",
                    "url": f"{BASE}/items/{{item.id}}",
                    "concurrency": concurrency,
                    "fanout_emit_mode": mode,
                    **sub,
                }
            ],
        }
    )


async def test_ten_thousand_items_never_exceed_the_concurrency_or_spawn_a_task_per_item() -> None:
    api, state = _list_then_details(10_000, yields=3)
    harness = Harness(FakeHttp(api))
    baseline = len(asyncio.all_tasks())
    outcome = await harness.run(_fanout_plan(25))
    assert outcome.status == "success", outcome.error
    assert harness.http.max_in_flight == 25
    # the workers plus a constant few (the run itself, the time driver), never one per item
    assert state["max_tasks"] - baseline <= 25 + 3
    assert len(harness.sink.responses) == 10_001


async def test_default_concurrency_is_fifty() -> None:
    api, _ = _list_then_details(500, yields=2)
    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": f"{BASE}/items",
            "sub_steps": [{"iterate_over": "response.body.items", "url": f"{BASE}/items/{{item.id}}"}],
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success" and harness.http.max_in_flight == 50


async def test_sequence_numbers_are_unique_and_gapless_under_concurrency() -> None:
    api, _ = _list_then_details(300, yields=2)
    harness = Harness(FakeHttp(api))
    await harness.run(_fanout_plan(17))
    sequences = [m.sequence for m, _ in harness.sink.messages]
    assert sequences == list(range(1, 302))


async def test_record_mode_emits_one_message_per_item_under_the_sub_step_path() -> None:
    api, _ = _list_then_details(3)
    harness = Harness(FakeHttp(api))
    outcome = await harness.run(_fanout_plan(2))
    assert outcome.status == "success"
    details = [m for m in harness.sink.responses if m.step_path == "0.detail"]
    assert sorted(m.response_body["id"] for m in details) == [0, 1, 2]
    assert outcome.stats.records == 3 + 3  # the page's array, then one per detail


async def test_page_mode_emits_one_enriched_array_per_parent_page() -> None:
    api, _ = _list_then_details(4)
    harness = Harness(FakeHttp(api))
    outcome = await harness.run(_fanout_plan(3, "page"))
    assert outcome.status == "success", outcome.error
    parent, page = harness.sink.responses
    assert parent.step_path == "0" and page.step_path == "0.detail"
    assert page.response_body == [{"id": i, "detail": {"id": i, "detail": True}} for i in range(4)]
    assert page.request_url.endswith("/items") and page.status_code == 200
    assert outcome.stats.entity_counts == {"0": 4, "0.detail": 4}


async def test_page_mode_enriches_scalar_items_and_keeps_ignored_ones_as_null() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items"):
            return response({"items": ["a", "b"]})
        return response(status=404) if request.url.endswith("/b") else response({"v": 1})

    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": f"{BASE}/items",
            "sub_steps": [{"iterate_over": "response.body.items", "url": f"{BASE}/items/{{item}}",
                           "fanout_emit_mode": "page", "ignore_on": [404]}],
        }
    )  # fmt: skip
    outcome = await harness.run(plan)
    assert outcome.status == "success"
    page = harness.sink.responses[-1]
    assert page.response_body == [{"item": "a", "sub_steps_0": {"v": 1}}, {"item": "b", "sub_steps_0": None}]


async def test_page_mode_runs_once_per_parent_page_of_a_paginated_step() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        if "/items/" in request.url:
            return response({"d": request.url.rsplit("/", 1)[1]})
        page = int(dict(request.params).get("page", "1"))
        return response({"items": [page * 10, page * 10 + 1], "next": page + 1, "more": page < 3})

    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": f"{BASE}/items",
            "params": {"page": "{prev.body.next}"},
            "while": "response.body.more",
            "emit_to_kafka": False,
            "sub_steps": [{"name": "d", "iterate_over": "response.body.items",
                           "url": f"{BASE}/items/{{item}}", "fanout_emit_mode": "page"}],
        }
    )  # fmt: skip
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    pages = harness.sink.responses
    assert [[e["item"] for e in m.response_body] for m in pages] == [[10, 11], [20, 21], [30, 31]]


async def test_nested_fanout_sees_parent_and_grandparent() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        path = request.url.removeprefix(BASE)
        if path == "/orgs":
            return response({"orgs": [{"id": "o1"}, {"id": "o2"}]})
        if path.endswith("/teams"):
            return response({"teams": [{"id": "t1"}]})
        return response({"path": path})

    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": f"{BASE}/orgs",
            "sub_steps": [
                {
                    "name": "teams",
                    "iterate_over": "response.body.orgs",
                    "url": f"{BASE}/orgs/{{item.id}}/teams",
                    "sub_steps": [
                        {
                            "name": "members",
                            "iterate_over": "response.body.teams",
                            "url": f"{BASE}/orgs/{{parent.item.id}}/teams/{{item.id}}/members",
                        }
                    ],
                }
            ],
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    members = sorted(
        m.response_body["path"] for m in harness.sink.responses if m.step_path == "0.teams.members"
    )
    assert members == ["/orgs/o1/teams/t1/members", "/orgs/o2/teams/t1/members"]


async def test_one_failing_item_fails_the_execution_and_stops_the_others() -> None:
    started: list[str] = []

    async def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items"):
            return response({"items": [{"id": i} for i in range(1000)]})
        started.append(request.url)
        await asyncio.sleep(0)
        return response(status=400) if request.url.endswith("/5") else response({"ok": 1})

    harness = Harness(FakeHttp(api))
    outcome = await harness.run(_fanout_plan(4))
    assert outcome.status == "failed" and "HTTP 400" in (outcome.error or "")
    assert len(started) < 50
    assert len(harness.sink.errors) == 1 and harness.sink.errors[0].step_path == "0.detail"


async def test_empty_or_missing_arrays_fan_out_over_nothing() -> None:
    harness = Harness(FakeHttp(queue=[response({"other": 1})]))
    outcome = await harness.run(_fanout_plan(5))
    assert outcome.status == "success" and len(harness.http.requests) == 1


@pytest.mark.parametrize("concurrency", [1, 3, 100])
async def test_run_pool_visits_every_item_once_with_bounded_workers(concurrency: int) -> None:
    seen: list[int] = []
    live = {"now": 0, "max": 0}

    async def work(index: int, item: int) -> None:
        live["now"] += 1
        live["max"] = max(live["max"], live["now"])
        await asyncio.sleep(0)
        seen.append(item)
        live["now"] -= 1

    await run_pool(list(range(40)), work, concurrency)
    assert sorted(seen) == list(range(40)) and live["max"] == min(concurrency, 40)


# --- one pool shared by the parent's pages -------------------------------------------------------


def _paged_api(time: VirtualTime, pages: int, per_page: int, latency: Callable[[int], float]):
    """GET /items?page=N (N from 1) lists ``per_page`` ids; GET /items/{id} answers after
    ``latency(id)`` virtual seconds. Tracks item requests in flight."""
    state = {"live": 0, "max_live": 0, "pages": 0}

    async def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items"):
            page = int(dict(request.params).get("page") or 1)
            state["pages"] += 1
            ids = [(page - 1) * per_page + i for i in range(per_page)]
            return response({"items": [{"id": i} for i in ids], "page": page, "more": page < pages})
        item_id = int(request.url.rsplit("/", 1)[1])
        state["live"] += 1
        state["max_live"] = max(state["max_live"], state["live"])
        try:
            await time.sleep(latency(item_id))
        finally:
            state["live"] -= 1
        return response({"id": item_id, "detail": True})

    return api, state


def _paged_plan(concurrency: int, mode: str = "record", **sub: Any) -> Plan:
    return plan_of(
        {
            "url": f"{BASE}/items",
            "params": {"page": "{prev.body.page && sum([prev.body.page, `1`])}"},
            "while": "response.body.more",
            "sub_steps": [
                {
                    "name": "detail",
                    "iterate_over": "response.body.items",
                    "url": f"{BASE}/items/{{item.id}}",
                    "concurrency": concurrency,
                    "fanout_emit_mode": mode,
                    **sub,
                }
            ],
        }
    )


async def test_fanout_overlaps_parent_pages_to_reach_the_concurrency_limit() -> None:
    time = VirtualTime()
    api, state = _paged_api(time, pages=50, per_page=20, latency=lambda _: 0.02)
    harness = Harness(FakeHttp(api), time=time)
    outcome = await harness.run(_paged_plan(50))
    assert outcome.status == "success", outcome.error
    assert state["pages"] == 50 and outcome.stats.requests == 50 + 1000
    # 20 items a page, yet 50 at once: the parent kept paginating while items were in flight
    assert state["max_live"] == 50
    # ceil(1000 / 50) x 20 ms is the ideal; the old per-page pool took 50 x 20 ms
    assert time.now == pytest.approx(0.4, abs=0.03)
    sequences = [m.sequence for m, _ in harness.sink.messages]
    assert sorted(sequences) == list(range(1, 1051))


async def test_page_mode_enrichment_stays_per_page_with_overlapping_pages() -> None:
    time = VirtualTime()
    # later items of a page finish first, and pages overlap: outputs must still land in place
    api, state = _paged_api(
        time, pages=6, per_page=4, latency=lambda i: 0.01 * (4 - i % 4) + 0.003 * (i // 4 % 2)
    )
    harness = Harness(FakeHttp(api), time=time)
    outcome = await harness.run(_paged_plan(7, "page"))
    assert outcome.status == "success", outcome.error
    assert state["max_live"] == 7
    pages = [m for m in harness.sink.responses if m.step_path == "0.detail"]
    assert [[e["id"] for e in m.response_body] for m in pages] == [
        list(range(p * 4, p * 4 + 4)) for p in range(6)
    ]
    for m in pages:
        assert all(e["detail"] == {"id": e["id"], "detail": True} for e in m.response_body)
    assert [m.sequence for m, _ in harness.sink.messages] == list(range(1, 13))
    assert outcome.stats.entity_counts == {"0": 24, "0.detail": 24}


async def test_ten_thousand_items_keep_tasks_and_queue_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    fanouts: list[FanOut] = []
    original = FanOut.__init__

    def recording_init(self: FanOut, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        fanouts.append(self)

    monkeypatch.setattr(FanOut, "__init__", recording_init)
    time = VirtualTime()
    api, state = _paged_api(time, pages=100, per_page=100, latency=lambda i: 0.001 * (i % 3))
    seen = {"tasks": 0, "queued": 0}

    async def observing(request: HttpRequest) -> HttpResponse:
        seen["tasks"] = max(seen["tasks"], len(asyncio.all_tasks()))
        if fanouts:
            seen["queued"] = max(seen["queued"], fanouts[0].queue.qsize())
        return await api(request)

    harness = Harness(FakeHttp(observing), time=time)
    baseline = len(asyncio.all_tasks())
    outcome = await harness.run(_paged_plan(25))
    assert outcome.status == "success", outcome.error
    assert outcome.stats.requests == 100 + 10_000 and state["max_live"] == 25
    assert len(fanouts) == 1 and len(fanouts[0].workers) == 0  # closed
    assert seen["tasks"] - baseline <= 25 + 3  # the workers and a constant few, never one per item
    assert 0 < seen["queued"] <= 25  # the queue holds at most `concurrency` items


async def test_page_mode_holds_a_bounded_number_of_unpublished_pages() -> None:
    time = VirtualTime()
    # the first item of page 1 is slow; everything else is instant
    api, state = _paged_api(time, pages=200, per_page=10, latency=lambda i: 5.0 if i == 0 else 0.0)
    pages_when_slow_done: list[int] = []

    async def observing(request: HttpRequest) -> HttpResponse:
        result = await api(request)
        if request.url.endswith("/items/0"):
            pages_when_slow_done.append(state["pages"])
        return result

    harness = Harness(FakeHttp(observing), time=time)
    outcome = await harness.run(_paged_plan(5, "page"))
    assert outcome.status == "success", outcome.error
    # 3 x concurrency items of unpublished pages at most: the parent waited for page 1
    assert pages_when_slow_done and pages_when_slow_done[0] <= 3 * 5 // 10 + 2
    pages = [m for m in harness.sink.responses if m.step_path == "0.detail"]
    assert len(pages) == 200 and pages[0].response_body[0]["id"] == 0


async def test_an_item_failure_stops_the_parent_pagination_promptly() -> None:
    time = VirtualTime()
    api, state = _paged_api(time, pages=500, per_page=10, latency=lambda _: 0.01)

    async def failing(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/items/15"):
            return response(status=400)
        return await api(request)

    harness = Harness(FakeHttp(failing), time=time)
    outcome = await harness.run(_paged_plan(10))
    assert outcome.status == "failed" and "HTTP 400" in (outcome.error or "")
    assert state["pages"] < 20
    assert [m.step_path for m in harness.sink.errors] == ["0.detail"]


async def test_nested_paginated_fanout_in_page_mode() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        path = request.url.removeprefix(BASE)
        page = int(dict(request.params).get("page") or 1)
        if path == "/orgs":
            return response(
                {"orgs": [{"id": f"o{page}a"}, {"id": f"o{page}b"}], "page": page, "more": page < 3}
            )
        if path.endswith("/teams"):
            return response({"teams": [{"id": "t1"}, {"id": "t2"}], "page": page, "more": page < 2})
        return response({"path": path})

    harness = Harness(FakeHttp(api))
    paged = {
        "params": {"page": "{prev.body.page && sum([prev.body.page, `1`])}"},
        "while": "response.body.more",
    }
    plan = plan_of(
        {
            "url": f"{BASE}/orgs",
            **paged,
            "sub_steps": [
                {
                    "name": "teams",
                    "iterate_over": "response.body.orgs",
                    "url": f"{BASE}/orgs/{{item.id}}/teams",
                    "concurrency": 3,
                    **paged,
                    "sub_steps": [
                        {
                            "name": "members",
                            "iterate_over": "response.body.teams",
                            "url": f"{BASE}/orgs/{{parent.item.id}}/teams/{{item.id}}",
                            "fanout_emit_mode": "page",
                            "concurrency": 2,
                        }
                    ],
                }
            ],
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    member_pages = [m for m in harness.sink.responses if m.step_path == "0.teams.members"]
    # 3 org pages x 2 orgs x 2 team pages = 12 pages of 2 teams
    assert len(member_pages) == 12
    paths = sorted(e["members"]["path"] for m in member_pages for e in m.response_body)
    assert paths == sorted(
        f"/orgs/o{p}{x}/teams/{t}" for p in (1, 2, 3) for x in "ab" for t in ("t1", "t2") for _ in (1, 2)
    )
    assert [m.sequence for m, _ in harness.sink.messages] == list(range(1, len(harness.sink.messages) + 1))
