"""Running plans: the seed examples, pagination, context, extract, emission and events."""

from __future__ import annotations

from typing import Any

import orjson
from engine_fakes import META, FakeHttp, Harness, RecordingLimiter, plan_of, response
from test_validate import BASIC_PLAN, FANOUT_PLAN

from engine.ports import HttpRequest, HttpResponse
from engine.validate import validate_plan
from settings.model import ExecutionLimits


def _paged_contacts(request: HttpRequest) -> HttpResponse:
    offset = int(dict(request.params)["offset"])
    pages = {0: ([1, 2], True, 2), 2: ([3, 4], True, 4), 4: ([5], False, None)}
    ids, more, nxt = pages[offset]
    body = {"contacts": [{"id": i} for i in ids], "has_more": more, "next_offset": nxt}
    return response(body, url=f"{request.url}?limit=100&offset={offset}")


async def test_basic_seed_plan_paginates_with_context_and_emits_every_page() -> None:
    harness = Harness(FakeHttp(_paged_contacts))
    outcome = await harness.run(BASIC_PLAN)
    assert outcome.status == "success", outcome.error
    assert [dict(r.params)["offset"] for r in harness.http.requests] == ["0", "2", "4"]
    assert harness.http.requests[0].url == "https://api.example.com/api/contacts"
    assert harness.http.requests[0].headers["Authorization"] == "Bearer token-1"
    assert outcome.context == {"next_offset": None}
    messages = harness.sink.responses
    assert [m.sequence for m in messages] == [1, 2, 3]
    assert [m.response_body["contacts"][0]["id"] for m in messages] == [1, 3, 5]
    assert messages[0].request_headers["Authorization"] == "[REDACTED]"
    assert messages[0].step_path == "0" and messages[0].trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert (outcome.stats.requests, outcome.stats.records, outcome.stats.messages) == (3, 5, 3)


async def test_fanout_seed_plan_fetches_details_for_every_contact() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        if request.url.endswith("/api/contacts"):
            return response({"contacts": [{"id": "c1"}, {"id": "c 2"}]})
        return response({"detail": request.url.rsplit("/", 2)[-2]})

    harness = Harness(FakeHttp(api))
    outcome = await harness.run(FANOUT_PLAN)
    assert outcome.status == "success", outcome.error
    urls = [r.url for r in harness.http.requests]
    assert urls[1:] == [
        "https://api.example.com/api/contacts/c1/details",
        "https://api.example.com/api/contacts/c%202/details",
    ]
    assert [m.step_path for m in harness.sink.responses] == ["0", "0.0", "0.0"]
    limiter: RecordingLimiter = harness.limiter
    rules, subject, max_wait = limiter.acquired[1]
    assert rules[0].requests == 100 and max_wait == 60.0
    assert subject.endpoint == "GET api.example.com/api/contacts/{item.id}/details"
    assert subject.tenant_id == META.tenant_id and subject.integration == META.integration


async def test_prev_is_the_previous_response_in_a_while_loop() -> None:
    pages = [
        response({"n": 1, "next": "b"}),
        response({"n": 2, "next": "c"}),
        response({"n": 3, "next": None}),
    ]
    harness = Harness(FakeHttp(queue=pages))
    plan = plan_of(
        {
            "url": "https://api.example.com/items",
            "params": {"cursor": "{prev.body.next}"},
            "while": "response.body.next != null",
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    assert [r.params for r in harness.http.requests] == [(), (("cursor", "b"),), (("cursor", "c"),)]


async def test_break_when_ends_the_loop_and_keeps_the_page() -> None:
    pages = [response({"items": [1], "stop": False}), response({"items": [2], "stop": True})]
    harness = Harness(FakeHttp(queue=pages))
    plan = plan_of(
        {
            "url": "https://api.example.com/items",
            "params": {"page": "{prev.body.items[0]}"},
            "while": "true == true",
            "break_when": "response.body.stop",
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success"
    assert len(harness.sink.responses) == 2 and len(harness.http.requests) == 2


async def test_more_than_max_loops_iterations_fail_loudly() -> None:
    counter = iter(range(10_000))

    def api(request: HttpRequest) -> HttpResponse:
        return response({"n": next(counter)})

    harness = Harness(FakeHttp(api), limits=ExecutionLimits(max_loops=5))
    plan = plan_of({"url": "https://api.example.com/x", "params": {"p": "{prev.body.n}"}, "while": "`true`"})
    outcome = await harness.run(plan)
    assert outcome.status == "failed"
    assert "after 5 iterations" in (outcome.error or "") and len(harness.http.requests) == 5
    assert harness.sink.errors[-1].error == outcome.error


async def test_a_step_may_lower_max_loops() -> None:
    counter = iter(range(100))
    harness = Harness(FakeHttp(lambda r: response({"n": next(counter)})))
    plan = plan_of(
        {"url": "https://a.example/x", "params": {"p": "{prev.body.n}"}, "while": "`true`", "max_loops": 3}
    )
    outcome = await harness.run(plan)
    assert outcome.status == "failed" and len(harness.http.requests) == 3


async def test_the_same_cursor_twice_fails_before_sending_the_repeat() -> None:
    pages = [response({"next": "a", "n": 1}), response({"next": "a", "n": 2})]
    harness = Harness(FakeHttp(queue=pages))
    plan = plan_of(
        {
            "url": "https://api.example.com/x",
            "params": {"cursor": "{prev.body.next}"},
            "while": "response.body.next",
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "failed"
    assert "would repeat the request of iteration 2" in (outcome.error or "")
    assert len(harness.http.requests) == 2  # the third, identical request was never sent


async def test_the_same_page_twice_fails() -> None:
    page = {"items": [1, 2], "more": True}
    pages = [response(page), response(dict(page))]
    harness = Harness(FakeHttp(queue=pages))
    plan = plan_of(
        {
            "url": "https://api.example.com/x",
            "params": {"n": "{length(prev.body.items || `[]`)}x{prev.status_code}"},
            "while": "response.body.more",
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "failed"
    assert "page 2 is identical to page 1" in (outcome.error or "")
    assert len(harness.sink.responses) == 1


async def test_extract_is_emitted_and_visible_to_later_pages_and_sub_steps() -> None:
    def api(request: HttpRequest) -> HttpResponse:
        if "/accounts" in request.url and "/users" not in request.url:
            page = int(dict(request.params).get("page", "1"))
            return response({"account": {"id": f"A{page}"}, "users": [{"id": page}], "page": page})
        return response({"ok": True})

    harness = Harness(FakeHttp(api))
    plan = plan_of(
        {
            "url": "https://api.example.com/accounts",
            "params": {"page": "{prev.next_page}"},
            "extract": {
                "account_id": "response.body.account.id",
                "next_page": "sum([response.body.page, `1`])",
            },
            "while": "response.body.page < 2",
            "sub_steps": [
                {
                    "iterate_over": "response.body.users",
                    "url": "https://api.example.com/accounts/{parent.account_id}/users/{item.id}",
                    "extract": {"from_parent": "parent.extracted.account_id"},
                }
            ],
        }
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    urls = [r.url for r in harness.http.requests]
    assert urls[1] == "https://api.example.com/accounts/A1/users/1"
    assert harness.http.requests[2].params == (("page", "2"),)
    assert urls[3] == "https://api.example.com/accounts/A2/users/2"
    top = [m for m in harness.sink.responses if m.step_path == "0"]
    assert [m.extracted_data["account_id"] for m in top] == ["A1", "A2"]
    subs = [m for m in harness.sink.responses if m.step_path == "0.0"]
    assert [m.extracted_data["from_parent"] for m in subs] == ["A1", "A2"]


async def test_emit_to_kafka_false_publishes_nothing_for_that_step() -> None:
    harness = Harness(FakeHttp(queue=[response({"a": 1})]))
    outcome = await harness.run(plan_of({"url": "https://api.example.com/x", "emit_to_kafka": False}))
    assert outcome.status == "success" and harness.sink.messages == []
    assert outcome.stats.messages == 0 and outcome.stats.requests == 1


async def test_context_updates_persist_into_the_outcome() -> None:
    harness = Harness(FakeHttp(queue=[response({"ts": "2024-01-01"})]), context={"since": "2023", "other": 1})
    plan = plan_of(
        {
            "url": "https://api.example.com/x",
            "params": {"since": "{context.since}"},
            "context_updates": {"since": "response.body.ts"},
        }
    )
    outcome = await harness.run(plan)
    assert harness.http.requests[0].params == (("since", "2023"),)
    assert outcome.context == {"since": "2024-01-01", "other": 1}


async def test_context_over_its_limit_ends_the_run_with_a_clear_error() -> None:
    harness = Harness(FakeHttp(queue=[response({"blob": "x" * 70_000})]))
    plan = plan_of({"url": "https://api.example.com/x", "context_updates": {"blob": "response.body.blob"}})
    outcome = await harness.run(plan)
    assert outcome.status == "failed"
    assert "context field 'blob'" in (outcome.error or "") and "65536 bytes per field" in (
        outcome.error or ""
    )
    assert harness.sink.errors and harness.sink.errors[0].step_path == "0"


async def test_started_and_completed_events_carry_status_and_stats() -> None:
    harness = Harness(FakeHttp(queue=[response([{"id": 1}, {"id": 2}, {"id": 3}])]))
    outcome = await harness.run(plan_of({"url": "https://api.example.com/x"}))
    started, completed = harness.sink.events
    assert started.type == "execution.started" and completed.type == "execution.completed"
    assert completed.status == "success" and completed.stats == outcome.stats
    assert outcome.stats.records == 3 and outcome.stats.entity_counts == {"0": 3}
    assert outcome.stats.bytes == len(orjson.dumps([{"id": 1}, {"id": 2}, {"id": 3}]))
    assert harness.sink.flushes >= 1


async def test_request_rendering_covers_method_headers_params_and_bodies() -> None:
    def plan(body: Any, headers: dict[str, str] | None = None):
        return validate_plan(
            {
                "key": "k",
                "step": {
                    "url": "{config.base_url}/x",
                    "method": "PATCH",
                    "headers": {"X-Trace": "{config.missing}", "X-Num": "{config.n}", **(headers or {})},
                    "params": {"ids": "{config.ids}", "skip": "{config.missing}", "n": 5},
                    "body": body,
                    "timeout_seconds": 7,
                },
            }
        )

    harness = Harness(
        FakeHttp(lambda r: response({})), config={"base_url": "https://a.example", "n": 3, "ids": [1, 2]}
    )
    await harness.run(plan({"n": "{config.n}", "ids": "{config.ids}"}))
    await harness.run(
        plan(
            {"n": "{config.n}", "ids": "{config.ids}"}, {"Content-Type": "application/x-www-form-urlencoded"}
        )
    )
    await harness.run(plan("n={config.n}"))
    json_req, form_req, raw_req = harness.http.requests
    assert json_req.method == "PATCH" and json_req.timeout_s == 7
    assert json_req.headers == {"X-Num": "3", "Content-Type": "application/json"}
    assert json_req.params == (("ids", "1"), ("ids", "2"), ("n", "5"))
    assert orjson.loads(json_req.body or b"") == {"n": 3, "ids": [1, 2]}
    assert form_req.body == b"n=3&ids=1&ids=2"
    assert form_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert raw_req.body == b"n=3" and "Content-Type" not in raw_req.headers


async def test_step_and_plan_rate_limits_are_asked_for_with_the_shortest_max_wait() -> None:
    harness = Harness(FakeHttp(queue=[response({})]))
    plan = plan_of(
        {
            "url": "https://api.example.com/x",
            "rate_limits": [{"requests": 1, "window_secs": 1, "max_wait_secs": 7}],
        },
        rate_limits=[{"requests": 100, "window_secs": 60, "scope": "global", "max_wait_secs": 30}],
    )
    await harness.run(plan)
    limiter: RecordingLimiter = harness.limiter
    (rules, _, max_wait), *_ = limiter.acquired
    assert [(r.requests, r.scope) for r in rules] == [(1, "per_config"), (100, "global")]
    assert max_wait == 7


async def test_the_memory_limiter_paces_a_fanout_and_the_wait_shows_in_stats() -> None:
    from engine.limiter_memory import MemoryRateLimiter

    sent_at: list[float] = []
    harness = Harness(FakeHttp())

    def api(request: HttpRequest) -> HttpResponse:
        sent_at.append(harness.time.now)
        return response({"items": list(range(5))} if request.url.endswith("/items") else {"ok": 1})

    harness.http.handler = api
    vt = harness.time
    harness.limiter = MemoryRateLimiter(clock=vt.clock, wall=vt.wall, sleep=vt.sleep)
    plan = plan_of(
        {
            "url": "https://api.example.com/items",
            "sub_steps": [{"iterate_over": "response.body.items", "url": "https://api.example.com/i/{item}"}],
        },
        rate_limits=[{"requests": 2, "window_secs": 10}],
    )
    outcome = await harness.run(plan)
    assert outcome.status == "success", outcome.error
    assert sorted(sent_at) == [0, 0, 10, 10, 20, 20]
    assert outcome.stats.rate_limited_seconds == 10 + 10 + 20 + 20
