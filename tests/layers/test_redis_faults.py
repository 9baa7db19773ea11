"""Fault tolerance of RedisChannelLayer: the private redis-server is killed and restarted."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bayou.layers.redis import RedisChannelLayer, RedisUnavailable
from tests.support.redis import RedisServer
from tests.support.timeouts import scaled


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The private server, guaranteed to be running again after the test."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


def _layer(server: RedisServer, **config: Any) -> RedisChannelLayer:
    config.setdefault("prefix", f"fault{uuid.uuid4().hex[:8]}")
    return RedisChannelLayer(hosts=[server.url], **config)


async def _probe_until_delivered(
    sender: RedisChannelLayer, group: str, layer: RedisChannelLayer, channel: str
) -> bool:
    """Send probes to ``group`` until one reaches ``channel`` (membership may need a
    heartbeat to come back after a restart). Bounded: 100 probes."""
    waiting = asyncio.ensure_future(layer.receive(channel))
    try:
        for _ in range(100):
            await sender.group_send(group, {"type": "probe"})
            done, _ = await asyncio.wait({waiting}, timeout=scaled(0.1))
            if done:
                if waiting.result()["type"] == "probe":
                    return True
                waiting = asyncio.ensure_future(layer.receive(channel))
        return False
    finally:
        waiting.cancel()


async def _other_tasks() -> set[asyncio.Task[Any]]:
    await asyncio.sleep(0)
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_receive_and_groups_recover_after_restart(server: RedisServer) -> None:
    """A receiver waiting through a Redis crash gets group messages sent after the restart.

    The instance reconnects on its own and registers its group membership again (the
    restarted server lost it); the sender's pooled connections reconnect too.
    """
    receiver = _layer(server)
    sender = _layer(server, prefix=receiver.prefix)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("fault-room", channel)
        await sender.group_send("fault-room", {"type": "before"})
        assert await asyncio.wait_for(receiver.receive(channel), scaled(5)) == {"type": "before"}

        waiting = asyncio.ensure_future(receiver.receive(channel))
        server.stop()
        await asyncio.sleep(0.3)
        assert not waiting.done()
        server.start()
        # Membership comes back with the receiver's next heartbeat; send until it arrives.
        for attempt in range(100):
            await sender.group_send("fault-room", {"type": "after", "attempt": attempt})
            done, _ = await asyncio.wait({waiting}, timeout=0.1)
            if done:
                break
        message = await asyncio.wait_for(waiting, scaled(5))
        assert message["type"] == "after"
        assert receiver.reconnects >= 1
    finally:
        await receiver.close()
        await sender.close()


async def test_operations_during_outage_raise_redis_unavailable(server: RedisServer) -> None:
    """send/group_send/group_add fail with RedisUnavailable while Redis is down, then work."""
    layer = _layer(server)
    try:
        await layer.send("fault.plain", {"type": "ok"})
        server.stop()
        with pytest.raises(RedisUnavailable):
            await layer.send("fault.plain", {"type": "lost"})
        with pytest.raises(RedisUnavailable):
            await layer.group_send("fault-group", {"type": "lost"})
        with pytest.raises(RedisUnavailable):
            await layer.group_add("fault-group", "fault.plain")
        server.start()
        await layer.send("fault.plain", {"type": "back"})
        assert await asyncio.wait_for(layer.receive("fault.plain"), scaled(5)) == {"type": "back"}
    finally:
        await layer.close()


async def test_waiting_receivers_fail_after_outage_timeout(server: RedisServer) -> None:
    """Receivers do not hang forever: after outage_timeout they get RedisUnavailable.

    Once Redis is back, new receives work again.
    """
    layer = _layer(server, outage_timeout=0.5)
    try:
        channel = await layer.new_channel()
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.1)
        server.stop()
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(waiting, scaled(10))
        server.start()
        for _ in range(100):
            try:
                await layer.send(channel, {"type": "again"})
                break
            except RedisUnavailable:
                await asyncio.sleep(0.1)
        assert await asyncio.wait_for(layer.receive(channel), scaled(10)) == {"type": "again"}
    finally:
        await layer.close()


async def test_idle_consumer_outlives_the_socket_timeout(server: RedisServer) -> None:
    """A consumer idle longer than the configured socket_timeout keeps working, without
    reconnecting (the blocking pop uses its own, longer socket timeout)."""
    layer = RedisChannelLayer(
        hosts=[{"address": server.url, "socket_timeout": 0.3}],
        prefix=f"idle{uuid.uuid4().hex[:8]}",
        block_timeout=1.0,
    )
    try:
        channel = await layer.new_channel()
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(1.5)
        await layer.send(channel, {"type": "late"})
        assert await asyncio.wait_for(waiting, scaled(5)) == {"type": "late"}
        assert layer.reconnects == 0
    finally:
        await layer.close()


async def test_traffic_through_a_restart_loses_no_process(server: RedisServer) -> None:
    """Two processes exchanging group traffic while Redis restarts both end up receiving.

    Messages sent while Redis is down fail loudly (RedisUnavailable) instead of vanishing.
    """
    first = _layer(server)
    second = _layer(server, prefix=first.prefix)
    try:
        channels = [await first.new_channel(), await second.new_channel()]
        await first.group_add("busy", channels[0])
        await second.group_add("busy", channels[1])
        failures = 0
        for index in range(30):
            if index == 10:
                server.stop()
            if index == 15:
                server.start()
            try:
                await first.group_send("busy", {"type": "n", "index": index})
            except RedisUnavailable:
                failures += 1
        assert failures >= 1
        for layer, channel in ((first, channels[0]), (second, channels[1])):
            assert await _probe_until_delivered(first, "busy", layer, channel)
    finally:
        await first.close()
        await second.close()


async def test_close_leaves_no_tasks_or_connections(server: RedisServer) -> None:
    """close() stops the receive loop and releases every connection it opened."""
    admin = aioredis.Redis.from_url(server.url)
    try:
        before_tasks = await _other_tasks()
        before = len(await admin.client_list())
        layer = _layer(server)
        channel = await layer.new_channel()
        await layer.group_add("leak-room", channel)
        await layer.group_send("leak-room", {"type": "x"})
        assert await asyncio.wait_for(layer.receive(channel), scaled(5)) == {"type": "x"}
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        await layer.close()
        with pytest.raises(RedisUnavailable):
            await waiting
        assert await _other_tasks() == before_tasks
        assert len(await admin.client_list()) == before
        assert await admin.exists(f"{layer.prefix}:group:leak-room") == 0
    finally:
        await admin.aclose()


async def test_unanswered_command_raises_instead_of_hanging(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default configuration, a group_send that Redis does not answer within
    the default socket timeout (here shortened; the server is paused) raises
    RedisUnavailable instead of hanging; the message is delivered at most once, and the
    layer works normally once Redis resumes.

    Regression: command connections had no socket timeout, so callers of a silently
    vanished server waited forever; timeouts were retried (a script could run again).
    """
    from bayou.layers.redis import hosts

    monkeypatch.setattr(hosts, "DEFAULT_SOCKET_TIMEOUT", 0.3)
    prefix = f"pause{uuid.uuid4().hex[:8]}"
    sender = RedisChannelLayer(hosts=[server.url], prefix=prefix)
    receiver = RedisChannelLayer(hosts=[server.url], prefix=prefix, block_timeout=0.5)
    admin = aioredis.Redis.from_url(server.url)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("pause-room", channel)
        await sender.group_send("pause-room", {"type": "warm.up"})
        assert await asyncio.wait_for(receiver.receive(channel), scaled(5)) == {"type": "warm.up"}
        await admin.client_pause(1000)
        with pytest.raises(RedisUnavailable, match="Redis is unavailable"):
            await sender.group_send("pause-room", {"type": "paused"})
        for _ in range(100):  # bounded: the pause ends after 1 s
            try:
                await sender.group_send("pause-room", {"type": "marker"})
                break
            except RedisUnavailable:
                await asyncio.sleep(0.1)
        got: list[dict[str, Any]] = []
        while not got or got[-1] != {"type": "marker"}:
            got.append(await asyncio.wait_for(receiver.receive(channel), scaled(10)))
        assert got.count({"type": "paused"}) <= 1
    finally:
        await admin.aclose()
        await receiver.flush()
        await receiver.close()
        await sender.close()


async def test_group_add_before_reconnect_keeps_older_groups(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a group_add reaches a restarted Redis before the receive loop has reconnected,
    the process's other groups are still registered again: group messages to them
    arrive after the restart.

    Regression: group_add recreated the liveness key without noticing it was gone, so
    the receive loop's reconnect found it present and re-registered nothing.
    """
    from bayou.layers.redis import core

    # The receive loop retries 2.5 s after losing Redis; the liveness key (3 s) set by
    # the group_add below is then still there when it reconnects.
    monkeypatch.setattr(core, "_backoff", lambda failures: 2.5)
    receiver = _layer(server, process_ttl=3.0)
    sender = _layer(server, prefix=receiver.prefix)
    try:
        old, new = await receiver.new_channel(), await receiver.new_channel()
        await receiver.group_add("old-room", old)
        server.stop()
        for _ in range(100):  # bounded: the receive loop notices within its block_timeout
            if receiver._down_since is not None:
                break
            await asyncio.sleep(0.05)
        server.start()
        for _ in range(100):  # bounded (process_ttl / 3): until group_add checks the key
            if time.monotonic() >= receiver._alive_until:
                break
            await asyncio.sleep(0.05)
        await receiver.group_add("new-room", new)
        assert receiver.reconnects == 0
        for _ in range(100):  # bounded: the receive loop retries after 2.5 s
            if receiver.reconnects:
                break
            await asyncio.sleep(0.05)
        await sender.group_send("old-room", {"type": "old"})
        await sender.group_send("new-room", {"type": "new"})
        assert await asyncio.wait_for(receiver.receive(old), scaled(5)) == {"type": "old"}
        assert await asyncio.wait_for(receiver.receive(new), scaled(5)) == {"type": "new"}
    finally:
        await receiver.close()
        await sender.close()
