"""Orchid end to end, and the one Orchid stack every stack contender of a bench run shares.

The contender (``python -m bench.contenders.orchid_e2e``): for a ``seq`` or ``fanout`` scenario it
creates an integration, a config (``base_url`` = the bench mock) and a plan (the same plan
document as bench.contenders.orchid_engine) over REST through Envoy, outside the clock. Then the
clock runs from the TriggerPlan call (gRPC through Envoy, Bearer token) until a Kafka consumer
has read every api-responses message of that execution (one per page, plus one per detail call)
AND GetExecution says ``success``. The work in between is the real path: server -> Redis stream
-> ``python -m worker`` -> the mock API -> Kafka (Tansu). The harness checks the mock served
exactly the scenario's requests, as for every other contender.

The harness side (``running_stack``): starts devstack.stack.Stack on free ports (Postgres, Redis,
Tansu, migrations, ``python -m server``, Envoy, scheduler and worker), creates the plan the
GetPlan latency contenders read, and hands every stack contender its addresses as
``options["stack"]`` (``StackFacts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from bench.contenders.common import Args, measure, parse_args, report

__all__ = ["LATENCY_PLAN_KEY", "StackFacts", "expected_messages", "running_stack"]

NAME = "orchid_e2e"
TENANT = "bench"
LATENCY_PLAN_KEY = "bench-getplan"
# The worker's MAX_LOOPS: the full sequential scenario pages 2,000 times (the default is 1,000).
MAX_LOOPS = "10000"
_TIMEOUT_S = 300.0


class StackFacts(TypedDict):
    """What a stack contender needs to reach the shared stack (JSON in ``--options-json``)."""

    envoy: str  # host:port of Envoy (gRPC and REST)
    grpc: str  # host:port of the server itself, loopback, no auth in front
    tenant: str
    token: str  # a dev RS256 token for ``tenant`` (Envoy verifies it)
    redis_url: str
    kafka: str  # bootstrap of the stack's broker (the worker publishes there)
    response_topic: str
    plan_key: str  # the plan the GetPlan latency contenders read
    root: str  # the stack's directory (logs)


# --- the harness side -------------------------------------------------------------------------


def _rest(
    base: str, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=20) as response:
        out: dict[str, Any] = json.loads(response.read() or b"{}")
        return out


def _wait_for_worker(redis_url: str, timeout_s: float = 30.0) -> None:
    """Until a worker has created the jobs stream's consumer group (so run 1 does not time its
    start). Redis lists a consumer only after its first delivery, so the group is the signal."""
    from redis import Redis

    from engine.queue import QueueNames

    names = QueueNames()
    client = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                groups = client.xinfo_groups(names.stream)
                if any(g["name"] in (names.group, names.group.encode()) for g in groups):
                    return
            time.sleep(0.2)
    finally:
        client.close()
    raise RuntimeError(f"no worker joined {names.stream} within {timeout_s:.0f}s")


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[StackFacts]:
    """A whole Orchid stack on free loopback ports, for every stack contender of one bench run."""
    from devstack.process import ManagedProcess
    from devstack.stack import REPO, Ports, Stack

    stack = Stack(root / "stack", ports=Ports.free(), tenant=TENANT)
    # Stack.env() starts from os.environ: the worker must take the 2,000-page plan.
    saved = os.environ.get("MAX_LOOPS")
    os.environ["MAX_LOOPS"] = MAX_LOOPS
    try:
        stack.start()
    finally:
        if saved is None:
            os.environ.pop("MAX_LOOPS", None)
        else:
            os.environ["MAX_LOOPS"] = saved
    try:
        if stack.process("worker") is None:  # a Stack without background processes
            env = {**stack.env(), "MAX_LOOPS": MAX_LOOPS}
            worker = ManagedProcess("worker", [sys.executable, "-m", "worker"],
                                    log_path=stack.root / "worker.log", env=env, cwd=REPO)  # fmt: skip
            worker.start()
            stack.processes.append(worker)
        _wait_for_worker(stack.redis.url)
        token = stack.token(TENANT)
        envoy = f"http://127.0.0.1:{stack.ports.envoy}"
        integration = f"bench-latency-{uuid.uuid4().hex[:8]}"
        _rest(envoy, token, "POST", "/api/v1/integrations", {"name": integration})
        plan = {
            "key": LATENCY_PLAN_KEY, "integration": integration, "description": "GetPlan latency",
            "step": {"name": "list", "url": "{config.base_url}/pages", "method": "GET",
                     "params": {"offset": "{prev.body.next_offset || '0'}", "limit": "50"},
                     "while": "response.body.has_more == true"},
        }  # fmt: skip
        _rest(envoy, token, "POST", "/api/v1/plans", plan)
        yield StackFacts(
            envoy=f"127.0.0.1:{stack.ports.envoy}", grpc=f"127.0.0.1:{stack.ports.grpc}", tenant=TENANT,
            token=token, redis_url=stack.redis.url, kafka=stack.kafka.bootstrap,
            response_topic="api-responses", plan_key=LATENCY_PLAN_KEY, root=str(stack.root),
        )  # fmt: skip
    finally:
        stack.stop()


# --- the contender ------------------------------------------------------------------------------


def expected_messages(pages: int, items: int, fanout: bool) -> int:
    """api-responses messages of one run: the list step and the detail sub-step both emit."""
    return pages + (items if fanout else 0)


async def _seed(facts: StackFacts, args: Args) -> str:
    """Integration, config and plan over REST through Envoy; returns the plan key."""
    import aiohttp

    from bench.contenders.orchid_engine import plan_document

    scenario = args.scenario
    suffix = uuid.uuid4().hex[:10]
    headers = {"authorization": f"Bearer {facts['token']}"}
    async with aiohttp.ClientSession(f"http://{facts['envoy']}", headers=headers) as http:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(path, json=body) as response:
                text = await response.text()
                if response.status != 200:
                    raise RuntimeError(f"POST {path}: {response.status} {text}")
                out: dict[str, Any] = json.loads(text)
                return out

        integration = await post("/api/v1/integrations", {"name": f"bench-e2e-{suffix}"})
        # Struct values are JSON numbers (floats) on the wire: strings render as the mock expects.
        values = {
            "base_url": args.base_url, "per_page": str(scenario.per_page), "total": str(scenario.items),
            "latency_ms": str(scenario.latency_ms),
        }  # fmt: skip
        await post("/api/v1/configs", {"integration_id": integration["id"], "name": f"cfg-{suffix}",
                                       "values": values, "enabled": True})  # fmt: skip
        document = plan_document(scenario)
        key = f"bench-e2e-{scenario.name}-{suffix}"
        await post(
            "/api/v1/plans", {"key": key, "integration": integration["name"], "step": document["step"]}
        )
    return key


async def _consumer(facts: StackFacts) -> Any:
    """A group-less consumer positioned at the end of every partition of the response topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=facts["kafka"], group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", request_timeout_ms=10_000, fetch_max_wait_ms=10,
    )  # fmt: skip
    await consumer.start()
    topic = facts["response_topic"]
    partitions: set[int] | None = None
    for _ in range(50):
        await consumer.topics()  # refreshes the cluster metadata
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            break
        await asyncio.sleep(0.1)
    if not partitions:
        await consumer.stop()
        raise RuntimeError(f"topic {topic} has no partitions")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, ends[tp])
    return consumer


async def _ensure_topic(facts: StackFacts) -> None:
    """The response topic exists once anything was published; on a fresh broker, create it."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=facts["kafka"], request_timeout_ms=10_000)
    await admin.start()
    try:
        if facts["response_topic"] not in set(await admin.list_topics()):
            with contextlib.suppress(Exception):
                await admin.create_topics([NewTopic(facts["response_topic"], 1, 1)])
    finally:
        await admin.close()


async def main(args: Args) -> None:
    import grpc
    from orchid.v1 import executions_pb2, executions_pb2_grpc, plans_pb2, plans_pb2_grpc

    from engine.kafka_codec import Reassembler

    facts: StackFacts = args.options["stack"]
    scenario = args.scenario
    expected = expected_messages(scenario.pages, scenario.items, scenario.fanout)
    key = await _seed(facts, args)
    await _ensure_topic(facts)
    consumer = await _consumer(facts)
    metadata = (("authorization", f"Bearer {facts['token']}"),)
    seen = 0
    status = "unknown"
    async with grpc.aio.insecure_channel(facts["envoy"]) as channel:
        plans = plans_pb2_grpc.PlanServiceStub(channel)
        executions = executions_pb2_grpc.ExecutionServiceStub(channel)
        success = executions_pb2.EXECUTION_STATUS_SUCCESS
        try:
            with measure() as m:
                t0 = time.perf_counter()
                reply = await plans.TriggerPlan(
                    plans_pb2.TriggerPlanRequest(key=key), metadata=metadata, timeout=20
                )
                triggered_s = time.perf_counter()
                (execution_id,) = reply.execution_ids
                wanted = execution_id.encode()
                reassembler = Reassembler()
                deadline = time.monotonic() + _TIMEOUT_S
                while seen < expected and time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                    for records in batches.values():
                        for record in records:
                            headers = [(name, bytes(data)) for name, data in record.headers]
                            if dict(headers).get("execution_id") != wanted:
                                continue
                            if reassembler.feed(headers, record.value or b"") is not None:
                                seen += 1
                last_message_s = time.perf_counter()
                while time.monotonic() < deadline:
                    execution = await executions.GetExecution(
                        executions_pb2.GetExecutionRequest(id=execution_id), metadata=metadata, timeout=20
                    )
                    status = executions_pb2.ExecutionStatus.Name(execution.status)
                    if execution.status >= success:  # success, failed, aborted, cancelled
                        break
                    await asyncio.sleep(0.02)
        finally:
            await consumer.stop()
    if seen != expected or status != "EXECUTION_STATUS_SUCCESS":
        raise SystemExit(f"execution {execution_id}: {status}, {seen} of {expected} messages read")
    m.pages = scenario.pages
    m.details = scenario.items if scenario.fanout else 0
    m.records = scenario.items + m.details
    m.extra.update(
        messages=seen, execution_id=execution_id, status=status, plan_key=key,
        trigger_s=round(triggered_s - t0, 6), last_message_s=round(last_message_s - t0, 6),
    )  # fmt: skip
    report(NAME, args, m)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse_args(NAME)))
