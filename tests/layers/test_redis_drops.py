"""Drops in RedisChannelLayer are counted, logged (rate-limited) and reported, never silent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bayou.exceptions import ChannelFull
from bayou.layers.redis import RedisChannelLayer
from bayou.layers.stats import DropEvent
from tests.support.timeouts import scaled


@pytest.fixture
async def make(redis_url: str) -> AsyncIterator[Any]:
    """Factory of layers on a fresh prefix; all flushed and closed afterwards."""
    made: list[RedisChannelLayer] = []
    prefix = f"drop{uuid.uuid4().hex[:8]}"

    def factory(**config: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix, **config)
        made.append(layer)
        return layer

    yield factory
    if made:
        await made[0].flush()
    for layer in made:
        await layer.close()


async def test_process_specific_capacity_raises_channel_full(make: Any) -> None:
    """send() to a new_channel() name raises ChannelFull at capacity, per channel; receiving
    makes room again (the depth kept in Redis is decremented)."""
    layer = make(capacity=2)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.send(full, {"type": "1"})
    await layer.send(full, {"type": "2"})
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "3"})
    await layer.send(other, {"type": "unaffected"})
    assert (await asyncio.wait_for(layer.receive(full), scaled(5)))["type"] == "1"
    for _ in range(100):  # the decrement is sent in the background
        try:
            await layer.send(full, {"type": "4"})
            break
        except ChannelFull:
            await asyncio.sleep(0.02)
    assert (await asyncio.wait_for(layer.receive(full), scaled(5)))["type"] == "2"
    assert (await asyncio.wait_for(layer.receive(full), scaled(5)))["type"] == "4"
    assert layer.stats().channel_full == 1


async def test_group_drop_in_receiving_process_is_counted_and_reported(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A member process whose local channel is full drops the group message: counted in
    stats() and channel_stats(), logged at WARNING, passed to on_drop with the message."""
    events: list[DropEvent] = []
    receiver = make(capacity=1, on_drop=events.append)
    sender = make()
    slow, fast = await receiver.new_channel(), await receiver.new_channel()
    await receiver.group_add("drops", slow)
    await receiver.group_add("drops", fast)
    caplog.set_level(logging.WARNING, logger="bayou.layers")
    await sender.group_send("drops", {"type": "first"})
    assert (await asyncio.wait_for(receiver.receive(fast), scaled(5)))["type"] == "first"
    await sender.group_send("drops", {"type": "second"})
    assert (await asyncio.wait_for(receiver.receive(fast), scaled(5)))["type"] == "second"
    assert (await asyncio.wait_for(receiver.receive(slow), scaled(5)))["type"] == "first"
    stats = receiver.stats()
    assert stats.dropped_full == 1
    assert receiver.channel_stats(slow).dropped == 1
    assert receiver.group_stats("drops").dropped == 1
    assert [(e.reason, e.channel, e.group, e.message) for e in events] == [
        ("full", slow, "drops", {"type": "second"})
    ]
    assert any("dropped a message" in record.getMessage() for record in caplog.records)


async def test_expired_messages_are_counted(make: Any) -> None:
    """Messages that expire unread are counted: on a plain channel when the next send trims
    them in Redis, on a process-specific channel when the receiving process finds them."""
    layer = make(expiry=0.3)
    local = await layer.new_channel()
    await layer.send("drop.plain", {"type": "old"})
    await layer.send(local, {"type": "old"})
    await asyncio.sleep(0.6)
    await layer.send("drop.plain", {"type": "new"})
    await layer.send(local, {"type": "new"})
    assert await asyncio.wait_for(layer.receive("drop.plain"), scaled(5)) == {"type": "new"}
    assert await asyncio.wait_for(layer.receive(local), scaled(5)) == {"type": "new"}
    assert layer.stats().expired == 2
    assert layer.channel_stats("drop.plain").expired == 1
    assert layer.stats().dropped == 2


async def test_plain_member_at_capacity_is_counted_by_the_sender(make: Any) -> None:
    """A plain member channel at capacity is skipped by group_send and counted there."""
    layer = make(capacity=1)
    await layer.group_add("plain-drops", "drop.stuck")
    await layer.send("drop.stuck", {"type": "filler"})
    await layer.group_send("plain-drops", {"type": "group"})
    assert layer.stats().dropped_full == 1
    assert layer.channel_stats("drop.stuck").dropped == 1
    assert layer.group_stats("plain-drops").dropped == 1


@pytest.mark.parametrize("pubsub", [False, True])
async def test_burst_into_group_loses_nothing_at_default_capacity(
    redis_url: str, pubsub: bool
) -> None:
    """Five publishers each sending 300 messages back to back into a group of 20 members
    of another process (capacity 100) lose nothing: the receiving process waits for room
    while its consumers keep receiving (back-pressure), instead of dropping."""
    from bayou.layers.redis import RedisPubSubChannelLayer

    cls = RedisPubSubChannelLayer if pubsub else RedisChannelLayer
    prefix = f"burst{uuid.uuid4().hex[:8]}"
    receiver = cls(hosts=[redis_url], prefix=prefix)
    publishers = [cls(hosts=[redis_url], prefix=prefix) for _ in range(5)]
    try:
        members = [await receiver.new_channel() for _ in range(20)]
        for member in members:
            await receiver.group_add("burst", member)

        async def consume(member: str) -> list[tuple[int, int]]:
            got = []
            for _ in range(1500):
                message = await asyncio.wait_for(receiver.receive(member), scaled(20))
                got.append((message["p"], message["n"]))
            return got

        async def publish(index: int, layer: RedisChannelLayer) -> None:
            for number in range(300):
                await layer.group_send("burst", {"type": "b", "p": index, "n": number})

        consumers = [asyncio.ensure_future(consume(member)) for member in members]
        await asyncio.gather(*(publish(i, p) for i, p in enumerate(publishers)))
        results = await asyncio.wait_for(asyncio.gather(*consumers), scaled(60))
        for got in results:
            for index in range(5):
                assert [n for p, n in got if p == index] == list(range(300))
        assert receiver.stats().dropped == 0
    finally:
        await receiver.flush()
        for layer in (receiver, *publishers):
            await layer.close()


async def test_cancelled_plain_receives_lose_nothing(make: Any) -> None:
    """Receivers on a plain channel cancelled at arbitrary moments while messages arrive
    lose none of them: a message popped for a cancelled receiver goes back to Redis."""
    layer = make(capacity=1000)
    sent = 200
    received: list[int] = []
    for index in range(sent):
        task = asyncio.ensure_future(layer.receive("drop.cancel"))
        for _ in range(index % 4):
            await asyncio.sleep(0)
        await layer.send("drop.cancel", {"type": "n", "index": index})
        for _ in range(index % 3):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            received.append((await task)["index"])
    while len(received) < sent:
        message = await asyncio.wait_for(layer.receive("drop.cancel"), scaled(5))
        received.append(message["index"])
    assert sorted(received) == list(range(sent))


async def test_slow_consumer_keeps_its_process_in_groups(redis_url: str) -> None:
    """While the receive loop waits for room for a slow but still receiving consumer
    (back-pressure), it keeps refreshing the process's liveness key: the process is not
    declared dead and removed from its groups, and no group message is lost meanwhile.

    Regression: the heartbeat ran only between blocking pops, so a wait longer than
    ``process_ttl`` evicted the process and later group messages vanished uncounted.
    """
    prefix = f"slow{uuid.uuid4().hex[:8]}"
    receiver = RedisChannelLayer(
        hosts=[redis_url], prefix=prefix, capacity=1, process_ttl=0.6, group_send_timeout=5
    )
    sender = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    try:
        channel = await receiver.new_channel()
        await receiver.group_add("slow-room", channel)
        for index in range(6):
            await sender.group_send("slow-room", {"type": "n", "index": index})
        got = []
        # One message per 0.25 s: the receive loop waits about 1.5 s > process_ttl.
        for index in range(6):
            got.append((await asyncio.wait_for(receiver.receive(channel), scaled(5)))["index"])
            await asyncio.sleep(0.25)
            await sender.group_send("slow-room", {"type": "n", "index": 100 + index})
        for _ in range(6):
            got.append((await asyncio.wait_for(receiver.receive(channel), scaled(5)))["index"])
        assert got == [*range(6), *range(100, 106)]
        assert receiver.stats().dropped == 0
    finally:
        await receiver.flush()
        await receiver.close()
        await sender.close()


async def test_dead_process_inbox_is_not_kept_alive(make: Any, redis_url: str) -> None:
    """Messages sent to a channel of a process that is gone (closed, or crashed and its
    liveness key expired) go to an inbox whose TTL further sends do not extend: it
    disappears at most ``expiry + 10`` s after the first uncollected message, however
    often others keep sending to it. A live process's inbox is unaffected.

    Regression: every send extended the TTL, so a dead inbox lived as long as anyone
    kept sending to it.
    """
    import redis.asyncio as aioredis

    dead, sender = make(expiry=5), make(expiry=5)
    gone = await dead.new_channel()
    alive = await sender.new_channel()
    await dead.close()
    inbox = f"{dead.prefix}:inbox:{dead.client_prefix}"
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await sender.send(gone, {"type": "lost"})
        first = await admin.pttl(inbox)
        assert 0 < first <= 15_000
        await asyncio.sleep(0.2)
        await sender.send(gone, {"type": "lost"})
        assert 0 < await admin.pttl(inbox) < first
        await sender.send(alive, {"type": "kept"})
        assert await asyncio.wait_for(sender.receive(alive), scaled(5)) == {"type": "kept"}
    finally:
        await admin.aclose()


async def test_slow_consumer_cannot_hold_back_the_others_for_ever(redis_url: str) -> None:
    """A consumer that keeps receiving, but more slowly than its group messages arrive,
    makes the receive loop wait for it only for a bounded time (about 10 times
    group_send_timeout in total); then it is marked congested and its group messages
    are dropped (counted), so another consumer of the same process gets its message.

    Regression: waiting was unbounded as long as the slow consumer received something
    every group_send_timeout, so one slow consumer stalled every consumer of its process.
    """
    prefix = f"hol{uuid.uuid4().hex[:8]}"
    receiver = RedisChannelLayer(
        hosts=[redis_url], prefix=prefix, capacity=1, group_send_timeout=0.2
    )
    sender = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    try:
        slow, fast = await receiver.new_channel(), await receiver.new_channel()
        await receiver.group_add("hol-slow", slow)
        await receiver.group_add("hol-fast", fast)
        for index in range(40):  # at one message per 0.15 s: 6 s of waiting unbounded
            await sender.group_send("hol-slow", {"type": "n", "index": index})
        await sender.group_send("hol-fast", {"type": "fast"})

        async def consume_slowly() -> None:
            for _ in range(40):
                await receiver.receive(slow)
                await asyncio.sleep(0.15)

        consumer = asyncio.ensure_future(consume_slowly())
        try:
            assert await asyncio.wait_for(receiver.receive(fast), scaled(10)) == {"type": "fast"}
        finally:
            consumer.cancel()
        assert receiver.channel_stats(slow).dropped > 0
        assert receiver.stats().dropped_full == receiver.channel_stats(slow).dropped
    finally:
        await receiver.flush()
        await receiver.close()
        await sender.close()
