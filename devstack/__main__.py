"""`make dev`: Orchid and everything it needs on this machine, no Docker. Ctrl-C stops it all."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from pathlib import Path

from devstack.stack import REPO, Ports, Stack

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


def usage(stack: Stack) -> str:
    base = f"http://127.0.0.1:{stack.ports.envoy}"
    token = stack.token()
    mint = f".venv/bin/python -m devstack.jwt --dir {stack.root}/jwt mint --tenant NAME"
    # shlex.quote: the plan's templates contain single quotes ("{context.next_offset || '0'}").
    plan = shlex.quote(json.dumps(BASIC_PLAN))
    integration = shlex.quote(json.dumps({"name": "salesforce", "description": "Salesforce REST API"}))
    return f"""
Orchid is up (data in {stack.root}; logs: {stack.root}/*.log and {stack.root}/*/*.log)

  REST and gRPC (through Envoy, JWT required): {base}
  gRPC server (loopback only, Envoy's upstream): 127.0.0.1:{stack.ports.grpc}
  Prometheus metrics (server):                   http://127.0.0.1:{stack.ports.server_metrics}/metrics
  Postgres: {stack.postgres.dsn}   Redis: {stack.redis.url}   Kafka: {stack.kafka.bootstrap}

A token for tenant "{stack.tenant}" (24 h; mint more: {mint}):

export TOKEN={token}

curl -s {base}/health
curl -s -X POST {base}/api/v1/integrations -H "authorization: Bearer $TOKEN" -d {integration}
curl -s -X POST {base}/api/v1/plans -H "authorization: Bearer $TOKEN" -d {plan}
curl -s {base}/api/v1/plans/salesforce-contacts -H "authorization: Bearer $TOKEN"
.venv/bin/grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:{stack.ports.envoy} list
.venv/bin/grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d '{{"key": "salesforce-contacts"}}' \\
    127.0.0.1:{stack.ports.envoy} orchid.v1.PlanService/GetPlan

Ctrl-C stops everything.
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
        print(usage(stack), flush=True)
        while not stop.wait(1.0):
            for process in stack.processes:
                process.check_alive()
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
