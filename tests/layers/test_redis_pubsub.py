"""RedisPubSubChannelLayer: the conformance suite, fan-out cost and reconnection."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from bayou.layers import BaseChannelLayer
from bayou.layers.redis.pubsub import RedisPubSubChannelLayer
from bayou.testing.layers import ChannelLayerConformance
from tests.support.redis import RedisServer
from tests.support.timeouts import scaled


class TestRedisPubSubConformance(ChannelLayerConformance):
    """RedisPubSubChannelLayer on the session's Redis server, a fresh prefix per layer."""

    @pytest.fixture(autouse=True)
    def _redis(self, redis_url: str) -> None:
        self.redis_url = redis_url

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        config.setdefault("prefix", f"ps{uuid.uuid4().hex[:8]}")
        return RedisPubSubChannelLayer(hosts=[self.redis_url], **config)


async def test_pubsub_group_send_is_one_command(redis_server: RedisServer) -> None:
    """A group_send is one EVALSHA holding one PUBLISH, for 2 or 300 members in 2 processes."""
    prefix = f"psfan{uuid.uuid4().hex[:8]}"
    first, second, sender = (
        RedisPubSubChannelLayer(hosts=[redis_server.url], prefix=prefix) for _ in range(3)
    )
    admin = aioredis.Redis.from_url(redis_server.url)

    async def measure() -> dict[str, int]:
        await admin.config_resetstat()
        await sender.group_send("room", {"type": "hi"})
        stats: dict[str, Any] = await admin.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        return {name: calls.get(name, 0) for name in ("evalsha", "eval", "publish", "rpush")}

    async def join(layer: RedisPubSubChannelLayer, count: int) -> list[str]:
        names = [await layer.new_channel() for _ in range(count)]
        for name in names:
            await layer.group_add("room", name)
        return names

    try:
        await sender.group_send("warm-up", {"type": "warm"})
        a, b = await join(first, 1), await join(second, 1)
        few = await measure()
        a += await join(first, 149)
        b += await join(second, 149)
        for layer, names in ((first, a[:1]), (second, b[:1])):
            assert await asyncio.wait_for(layer.receive(names[0]), scaled(5)) == {"type": "hi"}
        many = await measure()
        for layer, names in ((first, a), (second, b)):
            for name in names:
                assert await asyncio.wait_for(layer.receive(name), scaled(5)) == {"type": "hi"}
    finally:
        await admin.aclose()
        await first.flush()
        for layer in (first, second, sender):
            await layer.close()
    assert few == {"evalsha": 1, "eval": 0, "publish": 1, "rpush": 0}
    assert many == few


async def test_pubsub_resubscribes_after_restart(redis_server: RedisServer) -> None:
    """After Redis restarts, the layer resubscribes its inbox and groups on its own and
    queues the on_reconnect message type to its grouped channels."""
    prefix = f"psre{uuid.uuid4().hex[:8]}"
    receiver = RedisPubSubChannelLayer(
        hosts=[redis_server.url], prefix=prefix, on_reconnect="redis.reconnect"
    )
    sender = RedisPubSubChannelLayer(hosts=[redis_server.url], prefix=prefix)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("ps-room", channel)
        redis_server.stop()
        await asyncio.sleep(0.3)
        redis_server.start()
        message = await asyncio.wait_for(receiver.receive(channel), scaled(10))
        assert message == {"type": "redis.reconnect"}
        await sender.group_send("ps-room", {"type": "after"})
        assert await asyncio.wait_for(receiver.receive(channel), scaled(5)) == {"type": "after"}
        await sender.send(channel, {"type": "direct"})
        assert await asyncio.wait_for(receiver.receive(channel), scaled(5)) == {"type": "direct"}
    finally:
        if redis_server.process is None:
            redis_server.start()
        await receiver.close()
        await sender.close()
