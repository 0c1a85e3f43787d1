"""2 schedulers and 3 worker processes, 200 due pairs, several intervals: every pair runs once per
interval, never concurrently with itself, and nothing is left pending."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from fault_support import Processes, pending_count
from orchid_jobs_support import eventually, secret_box, simple_plan
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mockapi.responders import json
from mockapi.server import MockApi
from store import configs_repo, integrations_repo, plans_repo
from store.records import ConfigInput, IntegrationInput, PlanInput
from store.tables import Execution

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

WAIT_S = 4
PLANS, CONFIGS = 20, 10  # 200 pairs
RUN_FOR_S = 14


async def _seed(sessions: async_sessionmaker[AsyncSession], base_url: str) -> None:
    async with sessions.begin() as session:
        integration = await integrations_repo.create(session, "tenant-1", IntegrationInput(name="crm"))
        for index in range(CONFIGS):
            await configs_repo.create(
                session,
                "tenant-1",
                ConfigInput(integration_id=integration.id, name=f"c{index}", values={"base_url": base_url}),
                secrets=secret_box(),
            )
        for index in range(PLANS):
            await plans_repo.create(
                session,
                "tenant-1",
                PlanInput(
                    key=f"p{index}",
                    definition=simple_plan(f"p{index}"),
                    integration_name="crm",
                    wait_seconds=WAIT_S,
                    enabled=True,
                ),
            )


async def test_two_schedulers_three_workers_200_pairs(
    processes: Processes, sessions: async_sessionmaker[AsyncSession], redis: Redis, api: MockApi
) -> None:
    api.route("GET", "/items", json({"items": [1, 2]}), latency=0.05)
    await _seed(sessions, api.url)
    for name in ("s1", "s2"):
        processes.start("scheduler", name, SCHEDULER_POLL_INTERVAL="1s")
    for name in ("w1", "w2", "w3"):
        processes.start("worker", name, WORKER_CONCURRENCY="32")
    await asyncio.sleep(RUN_FOR_S)
    for name in ("s1", "s2"):
        processes.terminate(name)

    async def settled() -> bool:
        async with sessions.begin() as session:
            busy = await session.scalar(
                select(Execution.id).where(Execution.status.in_(("queued", "running"))).limit(1)
            )
        return busy is None

    await eventually(settled, 60, "every execution final")
    async with sessions.begin() as session:
        rows = list(await session.scalars(select(Execution)))
    by_pair: dict[tuple[str, uuid.UUID | None], list[Execution]] = defaultdict(list)
    for row in rows:
        by_pair[(row.plan_key, row.config_id)].append(row)
    assert len(by_pair) == PLANS * CONFIGS
    assert {row.status for row in rows} == {"success"}
    runs = [len(v) for v in by_pair.values()]
    # Every pair got its turns: at least twice in 14 s with a 4 s wait (3 on an idle machine; the
    # first round of 200 runs can take seconds when the 2 cores are shared), and no pair lagged
    # the others by more than one interval.
    assert min(runs) >= 2, runs
    assert max(runs) - min(runs) <= 1, runs
    for executions in by_pair.values():
        executions.sort(key=lambda e: e.started_at or e.created_at)
        for earlier, later in itertools.pairwise(executions):
            assert earlier.finished_at is not None and later.started_at is not None
            assert earlier.finished_at <= later.started_at, "a pair ran concurrently with itself"
            assert later.created_at - earlier.started_at >= timedelta(seconds=WAIT_S), "twice in one interval"
        assert all(len(e.trace_context.get("traceparent", "")) == 55 for e in executions)

    async def drained() -> bool:
        return await pending_count(redis) == 0

    await eventually(drained, 15, "nothing pending")
