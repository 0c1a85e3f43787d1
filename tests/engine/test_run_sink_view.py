"""run_plan publishes through the sink's per-execution view when it offers one (KafkaSink), and
never reports success before that view has flushed."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine_fakes import FakeHttp, Harness, RecordingSink, plan_of, response

from engine.errors import EmitError

URL = "https://api.example.com/x"


@dataclass
class PipelinedView(RecordingSink):
    """Accepts every emit; the broker's verdict only comes at flush time."""

    flush_error: EmitError | None = None
    flushed_after: list[int] = field(default_factory=list)

    async def flush(self) -> None:
        self.flushes += 1
        self.flushed_after.append(len(self.messages))
        if self.flush_error is not None:
            raise self.flush_error


@dataclass
class SharedSink(RecordingSink):
    views: list[PipelinedView] = field(default_factory=list)
    flush_error: EmitError | None = None

    def for_execution(self) -> PipelinedView:
        view = PipelinedView(flush_error=self.flush_error)
        self.views.append(view)
        return view


async def test_run_plan_emits_through_a_view_of_its_own_and_flushes_it_before_success() -> None:
    shared = SharedSink()
    harness = Harness(FakeHttp(queue=[response({"a": 1})]), sink=shared)
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "success", outcome.error
    (view,) = shared.views
    assert shared.messages == [] and shared.events == []  # everything went through the view
    assert [m.step_path for m in view.responses] == ["0"]
    assert [e.type for e in view.events] == ["execution.started", "execution.completed"]
    assert view.flushed_after[0] == 1  # flushed with the response in, before the outcome


async def test_a_failed_flush_fails_the_execution() -> None:
    shared = SharedSink(flush_error=EmitError("kafka refused a message to api-responses: boom"))
    harness = Harness(FakeHttp(queue=[response({"a": 1})]), sink=shared)
    outcome = await harness.run(plan_of({"url": URL}))
    assert outcome.status == "failed" and "boom" in (outcome.error or "")


async def test_each_execution_gets_its_own_view() -> None:
    shared = SharedSink()
    for _ in range(2):
        harness = Harness(FakeHttp(queue=[response({"a": 1})]), sink=shared)
        assert (await harness.run(plan_of({"url": URL}))).status == "success"
    assert len(shared.views) == 2 and shared.views[0] is not shared.views[1]
