"""Key rotation with Envoy's remote JWKS: a new key is accepted once published, a retired one
is refused once Envoy refetches (cache_duration 1s in this fixture)."""

from __future__ import annotations

import httpx
import pytest

from devstack.envoy import Envoy
from devstack.jwks_server import JwksServer
from devstack.jwt import DevKeyring
from tests.edge.helpers import bearer, eventually
from tests.edge.support import running_server

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_rotation_through_remote_jwks(
    remote_jwks_envoy: Envoy, jwks_server: JwksServer, rotating_keys: DevKeyring, upstream_port: int
) -> None:
    first = rotating_keys.signing_key
    async with (
        running_server(listen=f"127.0.0.1:{upstream_port}"),
        httpx.AsyncClient(base_url=remote_jwks_envoy.url, timeout=10) as http,
    ):

        async def status(token: str) -> int:
            return (await http.get("/api/v1/plans/contacts", headers=bearer(token))).status_code

        old_token = rotating_keys.mint("tn_123")
        assert await status(old_token) == 200

        # A key made but not yet published is unknown to Envoy.
        from devstack.jwt import DevKey, mint

        unpublished = DevKey.generate()
        assert await status(mint("tn_123", key=unpublished)) == 401

        # Rotate: the new key is published next to the old one and signs from now on.
        second = rotating_keys.rotate()
        new_token = rotating_keys.mint("tn_123")

        async def new_key_accepted() -> bool:
            return await status(new_token) == 200

        await eventually(new_key_accepted, what="token signed by the rotated-in key accepted")
        assert await status(old_token) == 200  # both keys are valid during the overlap

        # Retire the old key: its tokens stop working once Envoy refetches.
        rotating_keys.retire(first.kid)

        async def old_key_refused() -> bool:
            return await status(old_token) == 401

        await eventually(old_key_refused, what="token signed by the retired key refused")
        assert await status(new_token) == 200
        assert second.kid != first.kid
        assert jwks_server.requests >= 2
