"""The rendered Envoy config is accepted by `envoy --mode validate`, in both JWKS modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.envoy import DESCRIPTOR, EnvoyConfig, RemoteJwks, validate
from devstack.jwt import DevKeyring


def render(tmp_path: Path, config: EnvoyConfig) -> Path:
    path = tmp_path / "envoy.yaml"
    path.write_text(config.render())
    return path


def test_local_jwks_config_validates(tmp_path: Path) -> None:
    keys = DevKeyring(tmp_path / "jwt")
    config = EnvoyConfig(
        upstream_host="127.0.0.1", upstream_port=50051, port=8080, admin_port=9901, jwks_file=keys.jwks_path
    )
    validate(render(tmp_path, config))


@pytest.mark.parametrize("uri", ["https://auth.example.com/.well-known/jwks.json", "http://jwks:8765/keys"])
def test_remote_jwks_config_validates(tmp_path: Path, uri: str) -> None:
    config = EnvoyConfig(
        upstream_host="server",  # a DNS name, as in docker-compose
        upstream_port=50051,
        port=8080,
        admin_port=9901,
        listen_address="0.0.0.0",
        remote_jwks=RemoteJwks(uri, cache_s=300),
        issuer="https://auth.example.com/",
        audiences=("orchid-api", "orchid-cli"),
        forward_jwt=True,
    )
    text = config.render()
    assert "async_fetch" in text and "cache_duration" in text
    validate(render(tmp_path, config))


def test_config_names_the_descriptor_and_every_service(tmp_path: Path) -> None:
    keys = DevKeyring(tmp_path / "jwt")
    text = EnvoyConfig(
        upstream_host="127.0.0.1", upstream_port=1, port=2, admin_port=3, jwks_file=keys.jwks_path
    ).render()
    assert str(DESCRIPTOR) in text
    for service in ("IntegrationService", "PlanService", "DlqService", "RateLimitService", "OpsService"):
        assert f"orchid.v1.{service}" in text
    # The header scrubber comes before jwt_authn; the transcoder after the body limit.
    order = [
        text.index(f"- name: envoy.filters.http.{name}")
        for name in ("header_mutation", "jwt_authn", "rbac", "buffer", "grpc_json_transcoder", "router")
    ]
    assert order == sorted(order)


def test_exactly_one_jwks_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        EnvoyConfig(upstream_host="127.0.0.1", upstream_port=1, port=2, admin_port=3).render()
