"""Peer: dlt's declarative ``rest_api`` source, configured for the bench mock (runs in the dlt venv).

Extraction only: the source is iterated in-process (``for row in source``), which runs dlt's
pipe iterator (pagination, parent/child resolution, the thread pool for parallelized resources)
but no normalize or load stage, so no destination is involved. That is the part of dlt that does
the same work as Orchid's engine; a real destination would only add time.

Best effort for dlt: the child resource is ``parallelized`` and the extract thread pool is sized to
the scenario's concurrency (EXTRACT__WORKERS, EXTRACT__MAX_PARALLEL_ITEMS).
"""

from __future__ import annotations

import os

from bench.contenders.common import Args, measure, parse_args, report
from bench.scenarios import Scenario

NAME = "dlt_rest_api"


def rest_api_config(base_url: str, scenario: Scenario) -> dict[str, object]:
    pages: dict[str, object] = {
        "name": "pages",
        "endpoint": {
            "path": "pages",
            "params": {"total": scenario.items},
            "data_selector": "items",
            "paginator": {
                "type": "offset",
                "limit": scenario.per_page,
                "offset_param": "offset",
                "limit_param": "limit",
                "total_path": None,
                "has_more_path": "has_more",
            },
        },
    }
    resources: list[dict[str, object]] = [pages]
    if scenario.fanout:
        resources.append(
            {
                "name": "items",
                "endpoint": {
                    "path": "items/{resources.pages.id}",
                    "params": {"latency_ms": scenario.latency_ms},
                    "data_selector": "$",
                    "paginator": "single_page",
                },
                "parallelized": True,
            }
        )
    return {"client": {"base_url": base_url + "/"}, "resources": resources}


def main(args: Args) -> None:
    os.environ["EXTRACT__WORKERS"] = str(args.scenario.concurrency)
    os.environ["EXTRACT__MAX_PARALLEL_ITEMS"] = str(args.scenario.concurrency)
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    import dlt  # type: ignore[import-not-found]  # only in the dlt venv
    from dlt.sources.rest_api import rest_api_source  # type: ignore[import-not-found]

    source = rest_api_source(rest_api_config(args.base_url, args.scenario))  # type: ignore[arg-type]
    with measure() as m:
        # Rows are dicts; detail rows have a "detail" key, list rows do not.
        for row in source:
            if "detail" in row:
                m.details += 1
            m.records += 1
        m.pages = args.scenario.pages  # dlt does not expose its request count; the mock's /stats does
    m.extra["framework_version"] = dlt.__version__
    report(NAME, args, m)


if __name__ == "__main__":
    main(parse_args(NAME))
