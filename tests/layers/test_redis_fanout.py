"""group_send costs O(processes), not O(members): counted with Redis INFO commandstats."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bayou.layers.redis import RedisChannelLayer
from bayou.layers.redis.serializers import MsgPackSerializer, registry
from tests.support.redis import RedisServer
from tests.support.timeouts import scaled


@pytest.fixture
async def layers(redis_server: RedisServer) -> AsyncIterator[list[RedisChannelLayer]]:
    """Three instances ("processes") sharing a private Redis and a fresh prefix."""
    prefix = f"fan{uuid.uuid4().hex[:8]}"
    made = [RedisChannelLayer(hosts=[redis_server.url], prefix=prefix) for _ in range(3)]
    yield made
    await made[0].flush()
    for layer in made:
        await layer.close()


async def _command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def _measure_group_send(
    client: aioredis.Redis, sender: RedisChannelLayer, group: str
) -> dict[str, int]:
    await client.config_resetstat()
    await sender.group_send(group, {"type": "fan.out", "text": "hello"})
    calls = await _command_calls(client)
    return {name: calls.get(name, 0) for name in ("evalsha", "eval", "rpush")}


async def _join(layer: RedisChannelLayer, group: str, count: int) -> list[str]:
    members = [await layer.new_channel() for _ in range(count)]
    for member in members:
        await layer.group_add(group, member)
    return members


async def _drain(layer: RedisChannelLayer, members: list[str]) -> None:
    for member in members:
        message = await asyncio.wait_for(layer.receive(member), scaled(5))
        assert message == {"type": "fan.out", "text": "hello"}


async def test_group_send_commands_do_not_grow_with_members(
    redis_server: RedisServer, layers: list[RedisChannelLayer]
) -> None:
    """One group_send = one EVALSHA and one RPUSH per member process, for 2 or 400 members."""
    first, second, sender = layers
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # Loads the script into Redis' cache, so that the measurements see EVALSHA only.
        await sender.group_send("fan-warm-up", {"type": "warm.up"})
        small = await _join(first, "fan-room", 1) + await _join(second, "fan-room", 1)
        few = await _measure_group_send(client, sender, "fan-room")
        await _drain(first, small[:1])
        await _drain(second, small[1:])

        many_first = await _join(first, "fan-room", 199)
        many_second = await _join(second, "fan-room", 199)
        many = await _measure_group_send(client, sender, "fan-room")
        await _drain(first, small[:1] + many_first)
        await _drain(second, small[1:] + many_second)
    finally:
        await client.aclose()
    # Commands run inside the script are counted too: RPUSH once per member process.
    assert few == {"evalsha": 1, "eval": 0, "rpush": 2}
    assert many == few


async def test_group_send_serializes_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message is serialized once per group_send whatever the number of members."""
    counts = {"serialize": 0}

    class Counting(MsgPackSerializer):
        def serialize(self, message: Any) -> bytes:
            counts["serialize"] += 1
            return super().serialize(message)

    registry.register_serializer("counting-test", Counting)
    layer = RedisChannelLayer(
        hosts=[redis_server.url],
        prefix=f"ser{uuid.uuid4().hex[:8]}",
        serializer_format="counting-test",
    )
    try:
        members = await _join(layer, "ser-room", 50)
        members.append("plain.member")
        await layer.group_add("ser-room", "plain.member")
        counts["serialize"] = 0
        await layer.group_send("ser-room", {"type": "fan.out", "text": "hello"})
        assert counts["serialize"] == 1
        await _drain(layer, members)
        assert layer.stats().group_deliveries == 51
    finally:
        await layer.flush()
        await layer.close()


async def test_members_in_many_processes_each_get_one_copy(
    layers: list[RedisChannelLayer],
) -> None:
    """Members spread over processes each get exactly one copy, in send order."""
    first, second, sender = layers
    members_first = await _join(first, "order-room", 3)
    members_second = await _join(second, "order-room", 3)
    for index in range(20):
        await sender.group_send("order-room", {"type": "n", "index": index})
    for layer, members in ((first, members_first), (second, members_second)):
        for member in members:
            got = [
                (await asyncio.wait_for(layer.receive(member), scaled(5)))["index"]
                for _ in range(20)
            ]
            assert got == list(range(20))
    assert first.stats().group_deliveries == 60
    assert second.stats().group_deliveries == 60


async def test_crashed_process_leaves_its_groups(
    redis_server: RedisServer, layers: list[RedisChannelLayer]
) -> None:
    """A process whose liveness key expired (it crashed) is removed from the group by the
    next group_send; live processes keep receiving."""
    crashed, alive, sender = layers
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await _join(crashed, "crash-room", 2)
        survivors = await _join(alive, "crash-room", 1)
        group_key = f"{sender.prefix}:group:crash-room"
        assert await client.zcard(group_key) == 2
        # What a crash looks like from Redis: the receive loop stops and the key expires.
        for task in list(crashed._readers.values()):
            task.cancel()
        await asyncio.gather(*crashed._readers.values(), return_exceptions=True)
        crashed._readers.clear()
        await client.delete(f"{sender.prefix}:proc:{crashed.client_prefix}")
        await sender.group_send("crash-room", {"type": "fan.out", "text": "hello"})
        raw: list[bytes] = await client.zrange(group_key, 0, -1)  # type: ignore[assignment]
        members = {m.decode() for m in raw}
        assert members == {f"@{alive.client_prefix}"}
        await _drain(alive, survivors)
    finally:
        await client.aclose()


async def test_on_disconnect_and_on_reconnect_messages(redis_server: RedisServer) -> None:
    """With on_disconnect/on_reconnect set, grouped local channels get those message types
    when the receive loop loses and regains Redis."""
    layer = RedisChannelLayer(
        hosts=[redis_server.url],
        prefix=f"notify{uuid.uuid4().hex[:8]}",
        on_disconnect="redis.disconnect",
        on_reconnect="redis.reconnect",
    )
    try:
        channel = await layer.new_channel()
        await layer.group_add("notify-room", channel)
        redis_server.stop()
        disconnected = await asyncio.wait_for(layer.receive(channel), scaled(10))
        redis_server.start()
        reconnected = await asyncio.wait_for(layer.receive(channel), scaled(10))
        assert (disconnected, reconnected) == (
            {"type": "redis.disconnect"},
            {"type": "redis.reconnect"},
        )
    finally:
        if redis_server.process is None:
            redis_server.start()
        await layer.close()


@pytest.mark.parametrize("pubsub", [False, True])
async def test_idle_group_members_expire_locally(redis_server: RedisServer, pubsub: bool) -> None:
    """Local members of a group that never receives a message are still removed after
    group_expiry (the process's memory stays bounded), and the process leaves the group
    in Redis (list layer: its ``@pid`` member; pub/sub: its subscription).

    Regression: local membership was only checked when a group message arrived, so
    consumers that vanished without group_discard stayed in memory for good.
    """
    from bayou.layers.redis import RedisPubSubChannelLayer

    cls = RedisPubSubChannelLayer if pubsub else RedisChannelLayer
    layer = cls(hosts=[redis_server.url], prefix=f"idle{uuid.uuid4().hex[:8]}", group_expiry=0.5)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        channel = await layer.new_channel()
        await layer.group_add("idle-room", channel)
        assert layer.group_stats("idle-room").members == 1
        for _ in range(100):  # bounded: about 5 s
            if layer.stats().groups == 0:
                break
            await asyncio.sleep(0.05)
        assert layer.group_stats("idle-room").members == 0
        assert layer.stats().group_members_expired == 1
        for _ in range(100):
            if pubsub:
                subscribed = await client.pubsub_numsub(f"{layer.prefix}:gpub:idle-room")
                gone = subscribed[0][1] == 0
            else:
                gone = await client.zcard(f"{layer.prefix}:group:idle-room") == 0
            if gone:
                break
            await asyncio.sleep(0.05)
        assert gone
    finally:
        await client.aclose()
        await layer.flush()
        await layer.close()
