"""`make dev` keeps README's promise: ``python -m devstack`` (what `make dev` runs) brings the
whole stack up and prints a token and commands; executed as printed, they create the seed's
"Basic Plan Example" and read it back over REST and grpcurl. README's own command block works
too (on this run's port). The demo it sets up runs by itself: within 60 s of the start the printed
watch commands show a successful execution of plan "demo-accounts", its statistics and its Kafka
messages. Ctrl-C (SIGINT) then stops everything within 30 s and leaves no child process behind;
a second start on the same --root reuses the demo instead of failing on it.

The stack runs on free ports (ORCHID_DEV_*_PORT) in a temporary --root, next to the session's.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import astuple, fields
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.process import free_port, port_open
from devstack.stack import REPO, Ports

BASIC = REPO / "tests" / "contract" / "fixtures" / "basic_plan.json"
PORT_VARS = (
    "ORCHID_DEV_PORT",
    "ORCHID_DEV_GRPC_PORT",
    "ORCHID_DEV_POSTGRES_PORT",
    "ORCHID_DEV_REDIS_PORT",
    "ORCHID_DEV_KAFKA_PORT",
    "ORCHID_DEV_METRICS_PORT",
    "ORCHID_DEV_ENVOY_ADMIN_PORT",
    "ORCHID_DEV_DEMO_PORT",
    "ORCHID_DEV_WORKER_METRICS_PORT",
    "ORCHID_DEV_SCHEDULER_METRICS_PORT",
)
END_OF_USAGE = "Ctrl-C stops everything."
DEMO_PLAN = "demo-accounts"


def test_fixed_ports_default_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PORT_VARS:
        monkeypatch.delenv(name, raising=False)
    assert Ports.fixed() == Ports(
        envoy=8080,
        grpc=50051,
        postgres=55432,
        redis=56379,
        kafka=59092,
        server_metrics=9101,
        envoy_admin=9901,
        demo_api=58080,
        worker_metrics=9103,
        scheduler_metrics=9102,
    )
    for offset, name in enumerate(PORT_VARS):
        monkeypatch.setenv(name, str(40000 + offset))
    assert Ports.fixed() == Ports(*(40000 + i for i in range(len(PORT_VARS))))
    monkeypatch.setenv("ORCHID_DEV_REDIS_PORT", "not-a-port")
    with pytest.raises(ValueError, match="ORCHID_DEV_REDIS_PORT"):
        Ports.fixed()


def test_free_ports_are_distinct() -> None:
    for _ in range(20):
        assert len(set(astuple(Ports.free()))) == len(fields(Ports)) == 10


def distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class DevProcess:
    """``python -m devstack`` with its output collected line by line on a thread."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--root", str(root)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def read_until(self, marker: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            if marker in line:
                return "".join(self.output)
        raise AssertionError(f"no {marker!r} from `python -m devstack`:\n{''.join(self.output)}")

    def descendants(self) -> list[psutil.Process]:
        try:
            children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
            return children
        except psutil.NoSuchProcess:
            return []


def stop_dev(process: DevProcess) -> None:
    """SIGINT, as Ctrl-C; kill whatever is left if it did not stop in time."""
    if process.proc.poll() is None:
        leftovers = process.descendants()
        process.proc.send_signal(signal.SIGINT)
        try:
            process.proc.wait(40)
        except subprocess.TimeoutExpired:
            process.proc.kill()
        for child in leftovers:
            if child.is_running():
                child.kill()


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[DevProcess, dict[str, int]]]:
    ports = dict(zip(PORT_VARS, distinct_free_ports(len(PORT_VARS)), strict=True))
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "PYTHONUNBUFFERED": "1"}
    process = DevProcess(tmp_path / "devstack", env)
    try:
        yield process, ports
    finally:
        stop_dev(process)  # the test failed before its own SIGINT


def printed_commands(usage: str) -> tuple[str, list[str]]:
    """The ``export TOKEN=...`` line and the commands after it (backslash continuations joined;
    the prose between them left out)."""
    lines = usage[usage.index("export TOKEN=") : usage.index(END_OF_USAGE)].splitlines()
    export, commands, pending = lines[0].strip(), [], ""
    for line in lines[1:]:
        if not pending and not line.startswith(("curl ", ".venv/bin/")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append(pending + line.strip())
        pending = ""
    return export, commands


def bash(script: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=timeout_s
    )
    assert result.returncode == 0, f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def readme_block(port: int, token: str) -> str:
    """README's command block, on this run's port, with a real token for its placeholder."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if "export TOKEN=" in b]
    block = re.sub(r"^export TOKEN=.*$", f"export TOKEN={token}", block, count=1, flags=re.M)
    return "set -e\n" + block.replace("localhost:8080", f"localhost:{port}")


def test_make_dev_commands_work_when_pasted(dev: tuple[DevProcess, dict[str, int]], tmp_path: Path) -> None:
    process, ports = dev
    envoy = ports["ORCHID_DEV_PORT"]
    started = time.monotonic()
    usage = process.read_until(END_OF_USAGE, timeout_s=90)
    children = process.descendants()
    names = " ".join(" ".join(c.cmdline()) for c in children)
    expected_children = ("postgres", "redis-server", "tansu", "envoy", "-m server", "-m mockapi")
    for expected in (*expected_children, "-m scheduler", "-m worker"):
        assert expected in names, f"{expected} not among the children: {names}"

    export, commands = printed_commands(usage)
    assert len(commands) == 9, commands
    outputs = [bash(f"{export}\n{command}").stdout for command in commands[:6]]
    health, integration, created, got, listed, grpc_got = outputs

    assert json.loads(health)["status"] == "SERVING_STATUS_SERVING"
    assert json.loads(integration)["name"] == "salesforce"
    seed = json.loads(BASIC.read_text())
    created_plan = json.loads(created)
    assert {k: created_plan.get(k) for k in seed} == seed, created
    assert json.loads(got) == created_plan
    assert "orchid.v1.PlanService" in listed.split()
    over_grpc = json.loads(grpc_got)
    assert over_grpc["key"] == "salesforce-contacts" and over_grpc["id"] == created_plan["id"]

    # The mint command the usage prints gives another tenant a token; README's block, run as it.
    mint = re.search(r"mint more: (.+ --tenant) NAME", usage)
    assert mint is not None, usage
    token = bash(f"{mint.group(1)} readme-tenant").stdout.strip()
    readme = bash(readme_block(envoy, token)).stdout
    assert "orchid.v1.PlanService" in readme and '"salesforce-contacts"' in readme
    with httpx.Client(base_url=f"http://127.0.0.1:{envoy}", timeout=20) as http:
        plan = http.get(
            "/api/v1/plans/salesforce-contacts", headers={"authorization": f"Bearer {token}"}
        ).json()
    assert {k: plan.get(k) for k in seed} == seed
    assert plan["id"] != created_plan["id"]  # the readme tenant's own copy

    # The demo runs by itself: the printed watch commands show it within 60 s of the start.
    executions_cmd, statistics_cmd, tail_cmd = commands[6:]
    assert f"plan_key={DEMO_PLAN}" in executions_cmd and f"plan_key={DEMO_PLAN}" in statistics_cmd
    demo_ran_within(export, executions_cmd, statistics_cmd, deadline=started + 60)
    first_plan = demo_plan(envoy, export)
    kafka = bash(f"{tail_cmd} --from-beginning --max-messages 3 --timeout 30", timeout_s=45).stdout
    assert kafka.count(f"plan_key={DEMO_PLAN}") == 3, kafka
    assert "tenant_id=demo" in kafka and "execution_id=" in kafka and "key=demo:" in kafka, kafka

    # Ctrl-C stops everything, in time, and leaves nothing behind.
    children = process.descendants()
    process.proc.send_signal(signal.SIGINT)
    try:
        returncode = process.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("`python -m devstack` did not stop within 30 s of SIGINT")
    assert returncode == 0, "".join(process.output)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [" ".join(p.cmdline()) for p in alive]
    for name, port in ports.items():
        assert not port_open(port), f"{name} port {port} still open"

    # A second start on the same --root reuses the demo: the same plan, not a failed re-create.
    again = DevProcess(process.root, process.env)
    try:
        usage = again.read_until(END_OF_USAGE, timeout_s=90)
        assert "reused from the previous run" in usage, usage
        export, _ = printed_commands(usage)
        assert demo_plan(envoy, export)["id"] == first_plan["id"]
    finally:
        stop_dev(again)
    assert again.proc.returncode == 0, "".join(again.output)


def demo_ran_within(export: str, executions_cmd: str, statistics_cmd: str, *, deadline: float) -> None:
    """Poll the printed curl lines until the demo plan has a successful scheduled execution and
    statistics with success_count and api_calls above zero."""
    executions: list[dict[str, str]] = []
    stats: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        executions = json.loads(bash(f"{export}\n{executions_cmd}").stdout).get("executions", [])
        stats = json.loads(bash(f"{export}\n{statistics_cmd}").stdout).get("statistics", [])
        succeeded = [e for e in executions if e["status"] == "EXECUTION_STATUS_SUCCESS"]
        if succeeded and stats and int(stats[0]["success_count"]) >= 1 and int(stats[0]["api_calls"]) > 0:
            assert succeeded[0]["trigger"] == "EXECUTION_TRIGGER_SCHEDULE", succeeded[0]
            return
        time.sleep(1)
    raise AssertionError(f"no successful demo run within 60 s of the start: {executions} {stats}")


def demo_plan(envoy: int, export: str) -> dict[str, str]:
    token = export.split("=", 1)[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{envoy}", timeout=20) as http:
        response = http.get(f"/api/v1/plans/{DEMO_PLAN}", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    plan: dict[str, str] = response.json()
    return plan
