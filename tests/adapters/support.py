"""Helpers shared by the adapter tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from settings.model import EgressSettings

# The mock API listens on loopback, which the egress policy refuses by default.
LOOPBACK_ALLOWED = EgressSettings(allowlist=("127.0.0.1", "localhost"))


async def eventually(check: Callable[[], bool], *, timeout_s: float = 3.0) -> None:
    """Wait until ``check()`` holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
