"""UpdateAuthFlow / DeleteAuthFlow drop the flow's cached tokens and error marks in Redis."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from engine.auth_manager import auth_key
from server.auth_flow_service import forget_cached_tokens

pytestmark = [pytest.mark.timeout(30)]


async def test_every_config_token_and_mark_of_the_flow_is_deleted(redis: Redis) -> None:
    flow, other = uuid.uuid4(), uuid.uuid4()
    mine = [auth_key("t-1", "c-1", str(flow)), auth_key("t-1", "c-2", str(flow))]
    await redis.set(mine[0], "{}")
    await redis.set(mine[1], "{}")
    await redis.set(mine[0] + ":error", '{"broken": true}')
    kept = [auth_key("t-1", "c-1", str(other)), auth_key("t-2", "c-1", str(flow)), mine[0] + ":lock"]
    for key in kept:
        await redis.set(key, "x")
    assert await forget_cached_tokens(redis, "t-1", flow) == 3
    assert [await redis.exists(key) for key in mine] == [0, 0]
    assert await redis.exists(mine[0] + ":error") == 0
    assert [await redis.exists(key) for key in kept] == [1, 1, 1]
