"""Publishing to the Redis layer from sync code: async_to_sync and the sync helper."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync

from bayou.layers.redis import RedisChannelLayer
from bayou.layers.redis import sync as layer_sync
from tests.support.timeouts import scaled


def _in_thread(function: Callable[[], Any]) -> Any:
    """Run ``function`` in a fresh thread without an event loop (like a WSGI worker)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = function()
        except BaseException as exc:  # handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(scaled(30))
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _client_count(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return len(client.client_list())
    finally:
        client.close()


async def test_async_to_sync_group_send_from_a_thread(redis_url: str) -> None:
    """async_to_sync(layer.group_send) from a loop-less thread, called repeatedly, delivers
    every message, raises no 'Event loop is closed' error and keeps at most one pooled
    connection open (on the shared background loop), released by close()."""
    prefix = f"sync{uuid.uuid4().hex[:8]}"
    receiver = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    publisher = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("sync-room", channel)
        before = await asyncio.to_thread(_client_count, redis_url)

        def publish() -> None:
            for index in range(5):
                async_to_sync(publisher.group_send)("sync-room", {"type": "n", "index": index})

        await asyncio.to_thread(_in_thread, publish)
        got = [
            (await asyncio.wait_for(receiver.receive(channel), scaled(5)))["index"]
            for _ in range(5)
        ]
        assert got == list(range(5))
        assert await asyncio.to_thread(_client_count, redis_url) <= before + 1
        await asyncio.to_thread(_in_thread, lambda: async_to_sync(publisher.close)())
        assert await asyncio.to_thread(_client_count, redis_url) <= before
    finally:
        await receiver.flush()
        await receiver.close()
        await asyncio.to_thread(_in_thread, lambda: async_to_sync(publisher.close)())


async def test_sync_helper_reuses_one_connection(redis_url: str) -> None:
    """bayou.layers.redis.sync.group_send runs on one background loop: 20 calls from two
    threads open at most one new Redis connection, and every message arrives in order."""
    prefix = f"sync{uuid.uuid4().hex[:8]}"
    receiver = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    publisher = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("helper-room", channel)
        before = await asyncio.to_thread(_client_count, redis_url)

        def publish(start: int) -> None:
            for index in range(start, start + 10):
                layer_sync.group_send("helper-room", {"type": "n", "index": index}, layer=publisher)

        await asyncio.to_thread(_in_thread, lambda: publish(0))
        await asyncio.to_thread(_in_thread, lambda: publish(10))
        got = [
            (await asyncio.wait_for(receiver.receive(channel), scaled(5)))["index"]
            for _ in range(20)
        ]
        assert got == list(range(20))
        assert await asyncio.to_thread(_client_count, redis_url) <= before + 1
    finally:
        await receiver.flush()
        await receiver.close()
        await asyncio.to_thread(layer_sync.run, publisher.close())


async def test_sync_helper_refuses_to_block_an_event_loop(redis_url: str) -> None:
    """Called from async code (a running loop), the helper raises instead of blocking."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=f"sync{uuid.uuid4().hex[:8]}")
    with pytest.raises(RuntimeError, match="await the layer method"):
        layer_sync.group_send("x", {"type": "x"}, layer=layer)


@pytest.mark.parametrize("pubsub", [False, True])
async def test_group_add_from_another_loop(redis_url: str, pubsub: bool) -> None:
    """group_add() of a local channel via async_to_sync in a worker thread (another event
    loop) while this loop receives: later group messages reach the channel."""
    from bayou.layers.redis import RedisPubSubChannelLayer

    cls = RedisPubSubChannelLayer if pubsub else RedisChannelLayer
    layer = cls(hosts=[redis_url], prefix=f"xloop{uuid.uuid4().hex[:8]}")
    try:
        channel = await layer.new_channel()
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        await asyncio.to_thread(
            _in_thread, lambda: async_to_sync(layer.group_add)("xloop-room", channel)
        )
        await layer.group_send("xloop-room", {"type": "joined"})
        assert await asyncio.wait_for(waiting, scaled(5)) == {"type": "joined"}
    finally:
        await layer.flush()
        await layer.close()


def _connections_received(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


@pytest.mark.parametrize("pubsub", [False, True])
async def test_async_to_sync_does_not_connect_per_call(redis_url: str, pubsub: bool) -> None:
    """async_to_sync(layer.send/group_send/new_channel/receive) from a loop-less thread
    reuses pooled connections: 20 publishing calls open at most one connection (they run
    on the shared background loop), and calls on an instance that receives on this loop
    run there, so a channel made via async_to_sync receives on this loop.

    Regression: every async_to_sync call ran on a new event loop with a new connection.
    """
    from bayou.layers.redis import RedisPubSubChannelLayer

    cls = RedisPubSubChannelLayer if pubsub else RedisChannelLayer
    prefix = f"a2s{uuid.uuid4().hex[:8]}"
    receiver = cls(hosts=[redis_url], prefix=prefix)
    publisher = cls(hosts=[redis_url], prefix=prefix)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("a2s-room", channel)

        def publish() -> int:
            before = _connections_received(redis_url)
            for index in range(10):
                async_to_sync(publisher.group_send)("a2s-room", {"type": "n", "index": index})
                async_to_sync(publisher.send)("a2s.plain", {"type": "n", "index": index})
            # The probe's own connection is the +1.
            return _connections_received(redis_url) - before - 1

        opened = await asyncio.to_thread(_in_thread, publish)
        assert opened <= 1
        got = [
            (await asyncio.wait_for(receiver.receive(channel), scaled(5)))["index"]
            for _ in range(10)
        ]
        assert got == list(range(10))

        def join() -> str:
            name: str = async_to_sync(receiver.new_channel)()
            async_to_sync(receiver.group_add)("a2s-room", name)
            return name

        second = await asyncio.to_thread(_in_thread, join)
        await publisher.group_send("a2s-room", {"type": "both"})
        assert await asyncio.wait_for(receiver.receive(second), scaled(5)) == {"type": "both"}
    finally:
        await receiver.flush()
        await receiver.close()
        await asyncio.to_thread(_in_thread, lambda: async_to_sync(publisher.close)())
