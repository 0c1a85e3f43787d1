"""docker-compose's Envoy config is rendered from the same template `make dev` uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RENDER_ARGS = [
    "render",
    "--listen",
    "0.0.0.0",
    "--upstream",
    "server:50051",
    "--port",
    "8080",
    "--admin-port",
    "9901",
    "--descriptor",
    "/etc/envoy/orchid.binpb",
    "--jwks-uri",
    "http://jwks:8081/.well-known/jwks.json",
]


def test_compose_envoy_config_is_fresh() -> None:
    rendered = subprocess.run(
        [sys.executable, "-m", "devstack.envoy", *RENDER_ARGS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (REPO / "envoy" / "envoy.compose.yaml").read_text()
    assert rendered == committed, (
        "envoy/envoy.compose.yaml is stale; regenerate it with: python -m devstack.envoy "
        + " ".join(RENDER_ARGS)
        + " > envoy/envoy.compose.yaml"
    )


def test_compose_publishes_only_envoy() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    published = [line.strip() for line in compose.splitlines() if line.strip().startswith("ports:")]
    assert published == ['ports: ["8080:8080"]']
