"""Send one request through the real HttpCaller and print the outcome as JSON.

Run only inside a network namespace that has nothing but loopback (test_egress_netns.py does
``ip netns exec <ns> python netns_probe.py ...``), so a refusal that fails cannot send a packet
off the machine.

    netns_probe.py URL [--allow ENTRY ...] [--via-redirect]

--via-redirect starts a mock API on 127.0.0.1 (allow-listed) whose /go redirects to URL, and
requests /go instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from engine.errors import OrchidError
from engine.http_caller import build_http_caller
from engine.ports import HttpRequest
from mockapi import MockApi, redirect
from settings.model import EgressSettings, ExecutionLimits


async def probe(url: str, allow: list[str], via_redirect: bool) -> dict[str, object]:
    limits = ExecutionLimits(http_connect_timeout_s=2.0, http_read_timeout_s=2.0)
    async with MockApi() as api, build_http_caller(limits, EgressSettings(allowlist=tuple(allow))) as http:
        target = url
        if via_redirect:
            api.route("GET", "/go", redirect(url))
            target = f"{api.url}/go"
        try:
            response = await http.send(HttpRequest("GET", target, timeout_s=5.0))
        except OrchidError as exc:
            return {"outcome": "error", "error": type(exc).__name__, "message": exc.message}
        return {"outcome": "response", "status": response.status_code}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--via-redirect", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(probe(args.url, args.allow, args.via_redirect))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
