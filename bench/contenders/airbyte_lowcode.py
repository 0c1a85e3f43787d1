"""Peer: Airbyte's low-code CDK (airbyte-cdk) running bench/peers/airbyte_manifest.yaml (airbyte venv).

The manifest is read by ``ConcurrentDeclarativeSource`` (the CDK 7 runner; ManifestDeclarativeSource
is gone) and ``read()`` is driven with a configured catalog, counting RECORD messages: the same
path a connector's ``read`` command takes, minus serialising messages to stdout. For the sequential
scenario the catalog selects ``pages``; for fan-out it selects ``items``, whose
SubstreamPartitionRouter reads ``pages`` as its parent, so the same requests are sent as by
everyone else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench.contenders.common import Args, measure, parse_args, report

NAME = "airbyte_lowcode"
MANIFEST = Path(__file__).resolve().parent.parent / "peers" / "airbyte_manifest.yaml"


def main(args: Args) -> None:
    import importlib.metadata

    import yaml  # type: ignore[import-untyped]  # the airbyte venv has PyYAML, no stubs
    from airbyte_cdk.models import AirbyteStream as ProtocolStream  # type: ignore[import-not-found]
    from airbyte_cdk.models import (  # type: ignore[import-not-found]
        ConfiguredAirbyteCatalog,
        ConfiguredAirbyteStream,
        DestinationSyncMode,
        SyncMode,
        Type,
    )
    from airbyte_cdk.sources.declarative.concurrent_declarative_source import (  # type: ignore[import-not-found]
        ConcurrentDeclarativeSource,
    )

    logging.basicConfig(level=logging.WARNING)
    scenario = args.scenario
    config = {
        "base_url": args.base_url,
        "total": scenario.items,
        "per_page": scenario.per_page,
        "latency_ms": scenario.latency_ms,
        "concurrency": scenario.concurrency,
    }
    stream_name = "items" if scenario.fanout else "pages"
    catalog = ConfiguredAirbyteCatalog(
        streams=[
            ConfiguredAirbyteStream(
                stream=ProtocolStream(
                    name=stream_name, json_schema={}, supported_sync_modes=[SyncMode.full_refresh]
                ),
                sync_mode=SyncMode.full_refresh,
                destination_sync_mode=DestinationSyncMode.overwrite,
            )
        ]
    )
    manifest = yaml.safe_load(MANIFEST.read_text())
    source = ConcurrentDeclarativeSource(catalog=catalog, config=config, state=[], source_config=manifest)
    logger = logging.getLogger("airbyte.bench")
    with measure() as m:
        for message in source.read(logger, config, catalog, state=[]):
            if message.type == Type.RECORD:
                m.records += 1
            elif message.type == Type.TRACE and message.trace and message.trace.error:
                raise RuntimeError(f"airbyte read failed: {message.trace.error.message}")
        if scenario.fanout:
            m.details = m.records
            m.records += scenario.items  # list items were read too, as parent records
        m.pages = scenario.pages  # the mock's /stats is the authority on requests sent
    m.extra["framework_version"] = importlib.metadata.version("airbyte-cdk")
    report(NAME, args, m)


if __name__ == "__main__":
    main(parse_args(NAME))
