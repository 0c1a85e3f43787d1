"""`make dev`: Orchid and everything it needs on this machine, no Docker. Ctrl-C stops it all.

Once the stack is up it sets up the demo through the real API (REST through Envoy, with a minted
token, so it is a smoke test of the edge too): integration "demo", config "demo-api" pointing at
the demo API, and plan "demo-accounts", which the scheduler then runs every 10 s on the worker.
A second start on the same --root reuses them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.process import ServiceStartError
from devstack.stack import REPO, Ports, Stack
from mockapi.scenarios import DEMO_API_KEY

BASIC_PLAN = {
    "key": "salesforce-contacts",
    "integration": "salesforce",
    "wait_seconds": 3600,
    "enabled": True,
    "step": {
        "url": "{config.base_url}/api/contacts",
        "method": "GET",
        "headers": {"Authorization": "Bearer {auth.token}", "Content-Type": "application/json"},
        "params": {"limit": "100", "offset": "{context.next_offset || '0'}"},
        "while": "response.body.has_more == true",
        "context_updates": {"next_offset": "response.body.next_offset"},
    },
}


DEMO_INTEGRATION = "demo"
DEMO_CONFIG = "demo-api"
DEMO_PLAN_KEY = "demo-accounts"
DEMO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["base_url", "api_key"],
    "properties": {
        "base_url": {"type": "string", "description": "where the demo API listens"},
        "api_key": {"type": "string", "secret": True, "description": "sent as X-Api-Key"},
    },
}
DEMO_PLAN: dict[str, Any] = {
    "key": DEMO_PLAN_KEY,
    "integration": DEMO_INTEGRATION,
    "description": "Demo: every account, page by page, then each account's usage (a fan-out)",
    "wait_seconds": 10,
    "enabled": True,
    "step": {
        "url": "{config.base_url}/api/accounts",
        "method": "GET",
        "headers": {"X-Api-Key": "{config.api_key}"},
        "params": {"limit": "4", "offset": "{context.next_offset || '0'}"},
        "while": "response.body.has_more == true",
        "context_updates": {"next_offset": "response.body.next_offset"},
        "sub_steps": [
            {
                "iterate_over": "response.body.accounts[*]",
                "concurrency": 4,
                "url": "{config.base_url}/api/accounts/{item.id}/usage",
                "method": "GET",
                "headers": {"X-Api-Key": "{config.api_key}"},
            }
        ],
    },
}
_MASK = "********"  # what the API answers for a secret; sent back, it keeps the stored value


@dataclass(frozen=True, slots=True)
class Demo:
    integration_id: str
    config_id: str
    plan_key: str
    created: bool  # False: everything was there from a previous run on the same --root


class DemoSetupError(ServiceStartError):
    """The demo could not be set up through the API: the edge or the server is broken."""


def _call(
    http: httpx.Client, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any
) -> httpx.Response:
    """One REST call; retries for a few seconds while Envoy or the server is still warming up."""
    deadline = time.monotonic() + 15
    while True:
        try:
            response = http.request(method, path, **kw)
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise DemoSetupError(f"{method} {path}: {exc!r}") from exc
        else:
            if response.status_code in ok:
                return response
            if response.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                raise DemoSetupError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        time.sleep(0.5)


def setup_demo(stack: Stack) -> Demo:
    """Create (or find) the demo integration, config and plan of the stack's tenant, over REST."""
    headers = {"authorization": f"Bearer {stack.token()}"}
    base = f"http://127.0.0.1:{stack.ports.envoy}"
    created = False
    with httpx.Client(base_url=base, headers=headers, timeout=20) as http:
        made = _call(
            http,
            "POST",
            "/api/v1/integrations",
            ok=(200, 409),
            json={
                "name": DEMO_INTEGRATION,
                "description": "The demo API (make dev)",
                "config_schema": DEMO_SCHEMA,
            },
        )
        if made.status_code == 200:
            integration, created = made.json(), True
        else:
            listed = _call(http, "GET", "/api/v1/integrations", params={"page_size": 500}).json()
            [integration] = [i for i in listed.get("integrations", []) if i["name"] == DEMO_INTEGRATION]

        values = {"base_url": stack.demo_api_url, "api_key": DEMO_API_KEY}
        params = {"integration_id": integration["id"], "page_size": 500}
        configs = _call(http, "GET", "/api/v1/configs", params=params).json().get("configs", [])
        config = next((c for c in configs if c["name"] == DEMO_CONFIG), None)
        if config is None:
            body = {
                "integration_id": integration["id"],
                "name": DEMO_CONFIG,
                "values": values,
                "enabled": True,
            }
            config, created = _call(http, "POST", "/api/v1/configs", json=body).json(), True
        elif config.get("values", {}).get("base_url") != stack.demo_api_url:  # the demo port moved
            body = {**config, "values": {**values, "api_key": _MASK}}
            config = _call(http, "PUT", f"/api/v1/configs/{config['id']}", json=body).json()

        plan = _call(http, "GET", f"/api/v1/plans/{DEMO_PLAN_KEY}", ok=(200, 404))
        if plan.status_code == 404:
            _call(http, "POST", "/api/v1/plans", json=DEMO_PLAN)
            created = True
        elif {k: plan.json().get(k) for k in DEMO_PLAN} != DEMO_PLAN:  # an older demo: bring it up to date
            _call(http, "PUT", f"/api/v1/plans/{DEMO_PLAN_KEY}", json=DEMO_PLAN)
    return Demo(str(integration["id"]), str(config["id"]), DEMO_PLAN_KEY, created)


def usage(stack: Stack, demo: Demo | None = None) -> str:
    base = f"http://127.0.0.1:{stack.ports.envoy}"
    token = stack.token()
    mint = f".venv/bin/python -m devstack.jwt --dir {stack.root}/jwt mint --tenant NAME"
    # shlex.quote: the plan's templates contain single quotes ("{context.next_offset || '0'}").
    plan = shlex.quote(json.dumps(BASIC_PLAN))
    integration = shlex.quote(json.dumps({"name": "salesforce", "description": "Salesforce REST API"}))
    metrics = "  ".join(
        f"{name} http://127.0.0.1:{port}/metrics"
        for name, port in (
            ("server", stack.ports.server_metrics),
            ("worker", stack.ports.worker_metrics),
            ("scheduler", stack.ports.scheduler_metrics),
        )
    )
    return f"""
Orchid is up (data in {stack.root}; logs: {stack.root}/*.log and {stack.root}/*/*.log)

  REST and gRPC (through Envoy, JWT required): {base}
  gRPC server (loopback only, Envoy's upstream): 127.0.0.1:{stack.ports.grpc}
  Scheduler (every 5 s) and worker:              running (scheduler.log, worker.log)
  Demo API (plays a third-party API):            {stack.demo_api_url}
  Prometheus: {metrics}
  Postgres: {stack.postgres.dsn}   Redis: {stack.redis.url}   Kafka: {stack.kafka.bootstrap}
{_demo_text(stack, demo)}
A token for tenant "{stack.tenant}" (24 h; mint more: {mint}):

export TOKEN={token}

curl -s {base}/health
curl -s -X POST {base}/api/v1/integrations -H "authorization: Bearer $TOKEN" -d {integration}
curl -s -X POST {base}/api/v1/plans -H "authorization: Bearer $TOKEN" -d {plan}
curl -s {base}/api/v1/plans/salesforce-contacts -H "authorization: Bearer $TOKEN"
.venv/bin/grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:{stack.ports.envoy} list
.venv/bin/grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{"key": "salesforce-contacts"}}' \\
    127.0.0.1:{stack.ports.envoy} orchid.v1.PlanService/GetPlan
{_watch_commands(stack, demo)}
Ctrl-C stops everything.
"""


def _demo_text(stack: Stack, demo: Demo | None) -> str:
    if demo is None:
        return ""
    state = "set up" if demo.created else "reused from the previous run"
    return f"""
The demo ({state}): plan "{demo.plan_key}" of tenant "{stack.tenant}" polls the demo API every 10 s
with config "{DEMO_CONFIG}" (its api_key is stored encrypted): 3 pages of accounts, then each
account's usage in a fan-out; every response goes to Kafka. Its first run starts within seconds.
"""


def _watch_commands(stack: Stack, demo: Demo | None) -> str:
    if demo is None:
        return ""
    base = f"http://127.0.0.1:{stack.ports.envoy}"
    auth = '-H "authorization: Bearer $TOKEN"'
    return f"""
Watch the demo run: its latest executions, its statistics, its Kafka messages as they arrive (Ctrl-C):

curl -s "{base}/api/v1/executions?plan_key={demo.plan_key}&page_size=3" {auth}
curl -s "{base}/api/v1/statistics?plan_key={demo.plan_key}" {auth}
.venv/bin/python -m devstack.tail --bootstrap {stack.kafka.bootstrap} --topic api-responses
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO / ".devstack", help="data directory")
    parser.add_argument("--tenant", default="demo")
    args = parser.parse_args(argv)

    stack = Stack(args.root, ports=Ports.fixed(), tenant=args.tenant)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack.start()
        print(usage(stack, setup_demo(stack)), flush=True)
        while not stop.wait(1.0):
            for process in stack.processes:
                process.check_alive()
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
