"""Start stand-in worker processes (fleet_driver.py) and collect their outcomes."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

DRIVER = Path(__file__).with_name("fleet_driver.py")


async def run_fleet(
    specs: list[dict[str, Any]], *, start_delay_s: float = 2.5, timeout_s: float = 150
) -> list[Any]:
    """Run one driver process per spec, all starting at the same moment; return their outcomes."""
    start_at = time.time() + start_delay_s
    procs = []
    for spec in specs:
        full = {"execution_id": str(uuid.uuid4()), "start_at": start_at, **spec}
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(DRIVER),
                json.dumps(full),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    results = []
    async with asyncio.timeout(timeout_s):
        for proc in procs:
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-3000:]
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def fanout_plan(
    key: str,
    *,
    items_path: str = "/ids",
    item_path: str = "/items/{item}",
    concurrency: int = 50,
    rate_limits: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    max_attempts: int = 3,
) -> dict[str, Any]:
    sub: dict[str, Any] = {
        "iterate_over": "response.body.ids",
        "concurrency": concurrency,
        "url": "{config.base_url}" + item_path,
        "emit_to_kafka": False,
        "retry": {"max_attempts": max_attempts},
    }
    step: dict[str, Any] = {
        "url": "{config.base_url}" + items_path,
        "emit_to_kafka": False,
        "sub_steps": [sub],
    }
    if headers:
        step["headers"] = headers
        sub["headers"] = headers
    plan: dict[str, Any] = {"key": key, "step": step}
    if rate_limits:
        plan["rate_limits"] = rate_limits
    return plan
