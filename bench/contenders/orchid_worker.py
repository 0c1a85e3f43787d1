"""Orchid's worker and scheduler end to end: executions/s of real ``python -m worker`` processes,
and the time one ``python -m scheduler`` takes to put 10,000 due pairs on the stream.

``python -m bench.contenders.orchid_worker [--executions 3000] [--pairs 200] [--workers 1,2]
[--concurrency 64] [--scheduler-pairs 10000] [--only worker,single,scheduler]``

Starts PostgreSQL, Redis and a Tansu broker (devstack.servers) and the mock API
(``python -m mockapi --scenario demo``) in a temporary directory, then:

- worker (``--pairs`` (plan, config) pairs) and single (one pair, every run hits the same rows):
  a one-request plan (GET /health, emission on). Executions are inserted and their jobs pushed
  to the stream directly (store + engine.queue), while 1 (then 2) worker processes wait on the
  empty stream; the clock runs from the first push until every execution is ``success``.
- scheduler: ``--scheduler-pairs`` pairs (100 plans x N/100 configs, wait_seconds 60) whose last
  run started 60 s minus a few seconds ago, so they all fall due at one known instant; one
  ``python -m scheduler`` is running; the clock runs from that due time until every job is in
  the stream.

Each case prints one JSON line ({"contender": "orchid_worker", "case": ..., ...}) on stdout.

``python -m bench`` runs it as a contender (scenarios ``worker`` and ``scheduler``; contenders
orchid_worker_1 / orchid_worker_2 / orchid_scheduler): given ``--scenario-json`` it runs one case
on the harness's worker stack (``running_worker_stack``, passed as ``options["worker_stack"]``),
with the plan calling the harness's mock (``BENCH_PATH``, so the mock's counters check the work),
and prints a BENCH_RESULT line (bench.contenders.common.report) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench.contenders.common import Args, Measurement, parse_args, report
from devstack.process import free_port, port_open, wait_until
from devstack.servers import KafkaBroker, Postgres
from devstack.servers import Redis as RedisServer
from engine.queue import Envelope, QueueNames, queue_push
from store import configs_repo, integrations_repo, plans_repo, scheduling_repo
from store.crypto import SecretBox
from store.migrations import upgrade_head_async
from store.records import ConfigInput, IntegrationInput, PlanInput
from store.tables import Base, Execution

NAME = "orchid_worker"
REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "tvb97WY1fU_hWbLz08LPGG4Z12Zzcw92QcscuvlF0Pw="
TENANT = "bench"
NAMES = QueueNames()
TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables)


# --- the stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Where a case runs: the addresses of a running Postgres (migrated), Redis, Kafka and mock API.
    JSON-able (``to_dict`` / ``from_dict``) so the bench harness can hand one stack, started once,
    to every run (``running_worker_stack``, ``options["worker_stack"]``)."""

    root: Path  # logs of the worker / scheduler processes
    dsn: str
    redis_port: int
    kafka_bootstrap: str
    mock_url: str

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "root": str(self.root)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        return cls(**{**data, "root": Path(data["root"])})

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS_", "KAFKA_", "WORKER_"))
        }
        env.update(
            {
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(self.redis_port),
                "REDIS_DB": "0",
                "REDIS_PASSWORD": "",
                "KAFKA_BROKERS": self.kafka_bootstrap,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",  # Tansu's memory engine (devstack.servers)
                "DATABASE_URL": self.dsn,
                "SECRETS_ENCRYPTION_KEYS": SECRET_KEY,
                "EGRESS_ALLOWLIST": "127.0.0.1",
                "WORKER_METRICS_PORT": "0",
                "SCHEDULER_METRICS_PORT": "0",
                "LOG_LEVEL": "info",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(overrides)
        return env


class Stack:
    """Postgres and Redis, plus a Tansu broker unless ``kafka_bootstrap`` names one, plus the mock
    API (``python -m mockapi --scenario demo``) unless ``mock_url`` names one."""

    def __init__(
        self, root: Path, *, kafka_bootstrap: str | None = None, mock_url: str | None = None
    ) -> None:
        self.root = root
        self.postgres = Postgres(root / "postgres")
        self.redis = RedisServer(root / "redis", appendonly=False)
        self.kafka = KafkaBroker(root / "kafka") if kafka_bootstrap is None else None
        self._kafka_bootstrap = kafka_bootstrap
        self._mock_url = mock_url
        self.mock_port = free_port()
        self._mock: subprocess.Popen[bytes] | None = None

    def start(self) -> Site:
        self.postgres.start()
        self.redis.start()
        if self.kafka is not None:
            self.kafka.start()
        mock_url = self._mock_url
        if mock_url is None:
            log = (self.root / "mockapi.log").open("wb")
            self._mock = subprocess.Popen(
                [sys.executable, "-m", "mockapi", "--port", str(self.mock_port), "--scenario", "demo"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            wait_until(
                lambda: port_open(self.mock_port), timeout_s=15, what="mockapi", log=self.root / "mockapi.log"
            )
            mock_url = f"http://127.0.0.1:{self.mock_port}"
        bootstrap = self.kafka.bootstrap if self.kafka is not None else self._kafka_bootstrap
        assert bootstrap is not None
        return Site(self.root, self.postgres.dsn, self.redis.port, bootstrap, mock_url)

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._mock.wait(10)
        for server in (self.kafka, self.redis, self.postgres):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()


@contextlib.contextmanager
def running_worker_stack(root: Path, *, kafka_bootstrap: str, mock_url: str) -> Iterator[dict[str, Any]]:
    """For the bench harness: Postgres (migrated) and Redis, once per bench run, beside the
    harness's broker and mock; yields the ``Site`` as a dict (``options["worker_stack"]``)."""
    stack = Stack(root / "worker-stack", kafka_bootstrap=kafka_bootstrap, mock_url=mock_url)
    try:
        site = stack.start()
        asyncio.run(upgrade_head_async(site.dsn))
        yield site.to_dict()
    finally:
        stack.stop()


@contextlib.contextmanager
def processes(
    stack: Site, module: str, count: int, **overrides: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    for index in range(count):
        log = (stack.root / f"{module}-{index}-{uuid.uuid4().hex[:4]}.log").open("wb")
        env = stack.env(REDIS_STREAMS_CONSUMER_NAME=f"{module}-{index}", **overrides)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", module], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --- seeding ----------------------------------------------------------------------------------------


async def reset(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> None:
    async with sessions.begin() as session:
        await session.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    await redis.flushdb()


async def seed(
    sessions: async_sessionmaker[AsyncSession], base_url: str, *, plans: int, configs: int,
    wait_seconds: int | None, path: str = "/health",
) -> tuple[list[tuple[uuid.UUID, str]], list[uuid.UUID]]:  # fmt: skip
    box = SecretBox([SECRET_KEY])
    async with sessions.begin() as session:
        integration = await integrations_repo.create(session, TENANT, IntegrationInput(name="bench"))
        made_plans = []
        for index in range(plans):
            plan = await plans_repo.create(
                session, TENANT,
                PlanInput(
                    key=f"plan-{index}",
                    definition={"key": f"plan-{index}", "step": {"url": "{config.base_url}" + path}},
                    integration_name="bench", wait_seconds=wait_seconds, enabled=wait_seconds is not None,
                ),
            )  # fmt: skip
            made_plans.append((plan.id, plan.key))
        made_configs = []
        for index in range(configs):
            config = await configs_repo.create(
                session, TENANT,
                ConfigInput(integration_id=integration.id, name=f"c{index}", values={"base_url": base_url}),
                secrets=box,
            )  # fmt: skip
            made_configs.append(config.id)
    return made_plans, made_configs


async def xact_commits(dsn: str) -> int:
    url = make_url(dsn)
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        return int(
            await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        )
    finally:
        await conn.close()


async def consumers_ready(redis: Redis, count: int) -> bool:
    """Every worker is blocked in XREADGROUP (Redis 6.2 lists a consumer only once it got an entry)."""
    clients = await redis.client_list()
    return sum(1 for c in clients if c.get("cmd") == "xreadgroup") >= count


# --- the worker case --------------------------------------------------------------------------------


async def worker_case(
    stack: Site, *, case: str, workers: int, executions: int, pairs: int, concurrency: int, timeout_s: float,
    profile: str | None, path: str = "/health",
) -> dict[str, Any]:  # fmt: skip
    engine = create_async_engine(stack.dsn, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    redis = Redis.from_url(stack.redis_url)
    try:
        await reset(sessions, redis)
        plans, configs = await seed(
            sessions, stack.mock_url, plans=1, configs=pairs, wait_seconds=None, path=path
        )
        plan_id, plan_key = plans[0]
        rows = [
            {
                "tenant_id": TENANT,
                "id": uuid.uuid4(),
                "plan_key": plan_key,
                "plan_id": plan_id,
                "config_id": configs[i % len(configs)],
                "integration": "bench",
                "kind": "plan",
                "trigger": "manual",
                "status": "queued",
            }
            for i in range(executions)
        ]
        async with sessions.begin() as session:
            await session.execute(insert(Execution), rows)
        envelopes = [
            Envelope(str(r["id"]), TENANT, plan_key, config_id=str(r["config_id"]), trigger="manual")
            for r in rows
        ]
        overrides = {"WORKER_CONCURRENCY": str(concurrency), "JOB_MAX_ATTEMPTS": "3"}
        with processes(stack, "worker", workers, **overrides) as procs:
            deadline = time.monotonic() + 60
            while not await consumers_ready(redis, workers):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError("workers did not start (see logs in the stack directory)")
                await asyncio.sleep(0.1)
            commits_before = await xact_commits(stack.dsn)
            profiler = _start_profiler(profile, procs[0].pid)
            cpu_before = [_cpu_s(p.pid) for p in procs]
            busy_before, total_before = _machine_busy()
            by_command = _cpu_by_command()
            started = time.perf_counter()
            for start in range(0, len(envelopes), 1000):
                async with redis.pipeline(transaction=False) as pipe:
                    for envelope in envelopes[start : start + 1000]:
                        queue_push(pipe, NAMES, envelope)
                    await pipe.execute()
            done = 0
            async with engine.connect() as conn:
                while True:
                    done = int(
                        await conn.scalar(
                            text("SELECT count(*) FROM executions WHERE status IN ('success', 'failed')")
                        )
                        or 0
                    )
                    await conn.commit()
                    if done >= executions or time.perf_counter() - started > timeout_s:
                        break
                    await asyncio.sleep(0.05)
            wall = time.perf_counter() - started
            worker_rss = max(_peak_rss_mb(p.pid) for p in procs)
            worker_cpu = sum(_cpu_s(p.pid) for p in procs) - sum(cpu_before)
            busy_after, total_after = _machine_busy()
            spent = {k: v - by_command.get(k, 0.0) for k, v in _cpu_by_command().items()}
            top = dict(
                sorted(((k, round(v, 1)) for k, v in spent.items() if v >= 0.5), key=lambda kv: -kv[1])
            )
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(30)
            commits = await xact_commits(stack.dsn) - commits_before
        async with sessions.begin() as session:
            by_status: dict[str, int] = dict(
                (await session.execute(text("SELECT status, count(*) FROM executions GROUP BY 1"))).all()
            )
            stats = (
                await session.execute(text("SELECT sum(success_count), count(*) FROM plan_statistics"))
            ).one()
        return {
            "contender": NAME,
            "case": case,
            "workers": workers,
            "concurrency": concurrency,
            "executions": executions,
            "pairs": pairs,
            "completed": done,
            "wall_s": round(wall, 3),
            "executions_per_s": round(done / wall, 1),
            "db_commits_per_execution": round(commits / max(done, 1), 2),
            "worker_cpu_ms_per_execution": round(1000 * worker_cpu / max(done, 1), 2),
            "worker_peak_rss_mb": worker_rss,
            "machine_busy_pct": round(
                100 * (busy_after - busy_before) / max(total_after - total_before, 1), 1
            ),
            "cpu_s_by_command": top,
            "statuses": by_status,
            "statistics_success_total": int(stats[0] or 0),
            "ok": done >= executions,
        }
    finally:
        await redis.aclose()
        await engine.dispose()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """A running process's peak resident set (VmHWM), in MB (Linux); 0.0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _cpu_by_command() -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by command name (Linux)."""
    totals: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text_ = stat.read_text()
        except OSError:
            continue
        name = text_[text_.index("(") + 1 : text_.rindex(")")]
        fields = text_.rsplit(")", 1)[1].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return totals


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (Linux)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def _start_profiler(out: str | None, pid: int) -> subprocess.Popen[bytes] | None:
    if not out:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    fmt = "raw" if out.endswith(".txt") else "speedscope"  # raw: collapsed stacks, one per line
    return subprocess.Popen([str(py_spy), "record", "-p", str(pid), "-o", out, "-f", fmt, "-r", "200"])


# --- the scheduler case -----------------------------------------------------------------------------


async def scheduler_case(
    stack: Site,
    *,
    pairs: int,
    lead_s: float,
    timeout_s: float,
    history: int = 0,
    active: int = 0,
    explain: bool = False,
    profile: str | None = None,
) -> dict[str, Any]:
    engine = create_async_engine(stack.dsn, pool_size=2)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    redis = Redis.from_url(stack.redis_url)
    wait_seconds = 60
    try:
        await reset(sessions, redis)
        plan_count = 100 if pairs >= 100 else 1
        plans, configs = await seed(
            sessions, stack.mock_url, plans=plan_count, configs=pairs // plan_count, wait_seconds=wait_seconds
        )
        # One finished run per pair that started wait_seconds - lead_s ago: all due at one instant.
        async with sessions.begin() as session:
            due_at = await session.scalar(
                text("SELECT now() + make_interval(secs => :lead)"), {"lead": lead_s}
            )
            assert due_at is not None
            last = due_at - timedelta(seconds=wait_seconds)
            rows = [
                {
                    "tenant_id": TENANT,
                    "id": uuid.uuid4(),
                    "plan_key": key,
                    "plan_id": pid,
                    "config_id": cid,
                    "integration": "bench",
                    "kind": "plan",
                    "trigger": "schedule",
                    "status": "success",
                    "created_at": last,
                    "started_at": last,
                    "finished_at": last,
                    "enqueued_at": last,
                }
                for pid, key in plans
                for cid in configs
            ]
            for start in range(0, len(rows), 2000):
                await session.execute(insert(Execution), rows[start : start + 2000])
            if history > 0:  # older finished runs of every pair, as a scheduler in production sees
                await session.execute(
                    text(
                        "INSERT INTO executions (tenant_id, id, plan_key, plan_id, config_id, integration,"
                        " kind, trigger, status, created_at, started_at, finished_at, enqueued_at) "
                        "SELECT e.tenant_id, gen_random_uuid(), e.plan_key, e.plan_id, e.config_id,"
                        " e.integration, 'plan', 'schedule', 'success', t, t, t, t "
                        "FROM executions e, LATERAL (SELECT e.created_at - make_interval(hours => g) AS t"
                        " FROM generate_series(1, :history) g) h"
                    ),
                    {"history": history},
                )
            if active > 0:  # other work of the tenant, queued or running meanwhile (manual runs)
                await session.execute(
                    text(
                        "INSERT INTO executions (tenant_id, id, plan_key, config_id, integration, kind,"
                        " trigger, status) SELECT :tenant, gen_random_uuid(), 'busy-' || g,"
                        " gen_random_uuid(), 'bench', 'plan', 'manual', 'queued'"
                        " FROM generate_series(1, :active) g"
                    ),
                    {"tenant": TENANT, "active": active},
                )
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE executions"))
            await conn.commit()
            if explain:
                plan = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + str(scheduling_repo._PAIRS)))
                print("\n".join(r[0] for r in plan), file=sys.stderr)
                sweep = str(scheduling_repo._UNCONFIRMED).replace(":min_age", "'10 seconds'")
                sweep = sweep.replace(":recheck_after", "'10 minutes'").replace(":limit", "1000")
                plan = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sweep))
                print("\n".join(r[0] for r in plan), file=sys.stderr)
                await conn.rollback()
        with processes(stack, "scheduler", 1, SCHEDULER_POLL_INTERVAL="30s") as procs:
            profiler = _start_profiler(profile, procs[0].pid)
            while True:
                remaining = (due_at - await _db_now(engine)).total_seconds()
                if remaining <= 0:
                    break
                if procs[0].poll() is not None:
                    raise RuntimeError("scheduler exited")
                await asyncio.sleep(min(remaining, 0.05))
            started = time.perf_counter()  # the due time, on this process' clock
            count = 0
            while time.perf_counter() - started < timeout_s:
                count = int(await redis.xlen(NAMES.stream))
                if count >= len(rows):
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
            scheduler_rss = _peak_rss_mb(procs[0].pid)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(30)
        return {
            "contender": NAME,
            "case": "scheduler",
            "pairs": len(rows),
            "history_per_pair": history,
            "other_active_executions": active,
            "in_stream": count,
            "due_to_all_in_stream_s": round(elapsed, 3),
            "scheduler_peak_rss_mb": scheduler_rss,
            "ok": count >= len(rows),
        }
    finally:
        await redis.aclose()
        await engine.dispose()


async def _db_now(engine: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(text("SELECT clock_timestamp()"))


# --- main ---------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, stack: Site) -> int:
    await upgrade_head_async(stack.dsn)
    only = set(args.only.split(","))
    failed = False
    worker_counts = [int(n) for n in args.workers.split(",")]
    cases = []
    if "worker" in only:
        cases += [("worker", n, args.pairs) for n in worker_counts]
    if "single" in only:
        cases += [("single", n, 1) for n in worker_counts]
    for case, workers, pairs in cases:
        result = await worker_case(
            stack, case=case, workers=workers, executions=args.executions, pairs=pairs,
            concurrency=args.concurrency, timeout_s=args.timeout,
            profile=args.profile if workers == 1 and case == "worker" else None,
        )  # fmt: skip
        print(json.dumps(result), flush=True)
        failed |= not result["ok"]
    if "scheduler" in only:
        result = await scheduler_case(
            stack,
            pairs=args.scheduler_pairs,
            lead_s=8.0,
            timeout_s=args.timeout,
            history=args.scheduler_history,
            active=args.scheduler_active,
            explain=args.explain,
            profile=args.profile_scheduler,
        )
        print(json.dumps(result), flush=True)
        failed |= not result["ok"]
    return 1 if failed else 0


# --- as a bench contender (python -m bench: scenarios "worker" and "scheduler") -------------------------

# The standalone defaults: 200 (plan, config) pairs for the worker runs; for the scheduler, 10 older
# runs per pair and 10,000 other queued executions of the tenant, as a scheduler in production sees.
BENCH_PAIRS = 200
BENCH_HISTORY = 10
BENCH_ACTIVE = 10_000
BENCH_LEAD_S = 8.0
# One request per execution, to the bench mock's detail route: the harness counts it ("items").
BENCH_PATH = "/items/1"


async def contender(args: Args) -> dict[str, Any]:
    """One run of one case on the harness's shared worker stack; returns the driver's result."""
    site = replace(Site.from_dict(args.options["worker_stack"]), mock_url=args.base_url)
    scenario = args.scenario
    timeout = float(args.options.get("timeout_s", 150.0))
    if scenario.name == "worker":
        return await worker_case(
            site, case="worker", workers=int(args.options["workers"]), executions=scenario.calls,
            pairs=BENCH_PAIRS, concurrency=scenario.concurrency, timeout_s=timeout, profile=None,
            path=BENCH_PATH,
        )  # fmt: skip
    if scenario.name == "scheduler":
        return await scheduler_case(
            site, pairs=scenario.calls, lead_s=BENCH_LEAD_S, timeout_s=timeout, history=BENCH_HISTORY,
            active=BENCH_ACTIVE,
        )  # fmt: skip
    raise ValueError(f"{NAME} runs the worker and scheduler scenarios, not {scenario.name!r}")


def contender_main(argv: list[str]) -> int:
    args = parse_args(NAME, argv)
    result = asyncio.run(contender(args))
    m = Measurement(extra={k: v for k, v in result.items() if k not in ("contender", "wall_s")})
    # The peak RSS column shows the Orchid processes measured, not this driver.
    rss = result.get("worker_peak_rss_mb") or result.get("scheduler_peak_rss_mb")
    if rss:
        m.extra["peak_rss_mb"] = rss
    m.wall_s = float(result["wall_s"] if "wall_s" in result else result["due_to_all_in_stream_s"])
    report(NAME, args, m)
    return 0 if result["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--scenario-json" in argv:  # run by the bench harness (bench.harness.run_once)
        return contender_main(argv)
    parser = argparse.ArgumentParser(prog="python -m bench.contenders.orchid_worker", description=__doc__)
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, e.g. 1,2")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--scheduler-pairs", type=int, default=10_000)
    parser.add_argument("--only", default="worker,single,scheduler")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--profile", help="py-spy output of the 1-worker run (.txt: collapsed stacks, else speedscope)"
    )
    parser.add_argument("--scheduler-history", type=int, default=10, help="older runs per pair")
    parser.add_argument("--scheduler-active", type=int, default=10_000, help="other queued executions")
    parser.add_argument("--explain", action="store_true", help="print the scheduler's pair query plan")
    parser.add_argument("--profile-scheduler", help="py-spy output of the scheduler run (as --profile)")
    parser.add_argument("--keep", action="store_true", help="keep the stack directory (logs)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="orchid-worker-bench-"))
    stack = Stack(root)
    try:
        return asyncio.run(run(args, stack.start()))
    finally:
        stack.stop()
        if args.keep:
            print(f"stack directory kept: {root}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
