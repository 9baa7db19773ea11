"""The Redis layers' receive/fan-out fast paths keep the documented behaviour.

A group message fanned out to several local members is decoded once and each member
gets its own copy; names accepted by ``receive()`` are remembered, bad ones are still
refused on every call.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bayou.layers.redis import RedisChannelLayer
from bayou.layers.redis import core as redis_core
from bayou.layers.redis.pubsub import RedisPubSubChannelLayer
from bayou.layers.redis.serializers import MsgPackSerializer, registry
from tests.support.timeouts import scaled


class _CountingSerializer(MsgPackSerializer):
    """msgpack that counts decodes and refuses messages carrying a ``poison`` key."""

    decoded = 0

    def from_bytes(self, data: bytes) -> Any:
        message = super().from_bytes(data)
        type(self).decoded += 1
        if isinstance(message, dict) and "poison" in message:
            raise ValueError("poisoned message")
        return message


registry.register_serializer("hotpath-counting", _CountingSerializer)


@pytest.fixture(params=["list", "pubsub"])
async def layer(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RedisChannelLayer]:
    """One instance of each Redis layer, counting decodes, on a fresh prefix."""
    cls = RedisChannelLayer if request.param == "list" else RedisPubSubChannelLayer
    made = cls(
        hosts=[redis_url],
        prefix=f"hot{uuid.uuid4().hex[:8]}",
        serializer_format="hotpath-counting",
    )
    yield made
    await made.flush()
    await made.close()


async def _members(layer: RedisChannelLayer, group: str, count: int) -> list[str]:
    names = [await layer.new_channel() for _ in range(count)]
    for name in names:
        await layer.group_add(group, name)
    return names


async def test_group_message_is_decoded_once_and_copied_per_member(
    layer: RedisChannelLayer,
) -> None:
    """Five local members each get an equal dict; the payload was decoded only once."""
    members = await _members(layer, "room", 5)
    sent = {"type": "chat.message", "text": "hi", "n": 3}
    before = _CountingSerializer.decoded
    await layer.group_send("room", sent)
    got = [await asyncio.wait_for(layer.receive(name), scaled(5)) for name in members]
    assert got == [sent] * 5
    assert len({id(message) for message in got}) == 5
    assert _CountingSerializer.decoded - before == 1


async def test_members_may_mutate_their_copies(layer: RedisChannelLayer) -> None:
    """Changing one member's message (top level or nested) leaves the others' intact."""
    members = await _members(layer, "room", 3)
    sent = {"type": "chat.message", "items": [1, {"k": "v"}], "meta": {"tags": ["a"]}}
    await layer.group_send("room", sent)
    first = await asyncio.wait_for(layer.receive(members[0]), scaled(5))
    first["type"] = "changed"
    first["items"][1]["k"] = "changed"
    first["items"].append(99)
    first["meta"]["tags"].clear()
    rest = [await asyncio.wait_for(layer.receive(name), scaled(5)) for name in members[1:]]
    assert rest == [sent, sent]
    rest[0]["meta"]["tags"].append("b")
    assert rest[1] == sent


async def test_single_member_gets_the_message(layer: RedisChannelLayer) -> None:
    """A group with one local member still delivers an equal message to it."""
    [member] = await _members(layer, "solo", 1)
    await layer.group_send("solo", {"type": "solo.message", "data": b"\x00\xff"})
    message = await asyncio.wait_for(layer.receive(member), scaled(5))
    assert message == {"type": "solo.message", "data": b"\x00\xff"}


async def test_undecodable_group_message_is_skipped_by_every_member(
    layer: RedisChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    """A group message that cannot be decoded is dropped (logged) for each member, and
    the next message still reaches all of them."""
    members = await _members(layer, "room", 3)
    with caplog.at_level(logging.ERROR, logger="bayou.layers.redis"):
        await layer.group_send("room", {"type": "bad", "poison": True})
        await layer.group_send("room", {"type": "good"})
        got = [await asyncio.wait_for(layer.receive(name), scaled(5)) for name in members]
    assert got == [{"type": "good"}] * 3
    assert sum("cannot be decoded" in record.getMessage() for record in caplog.records) == 3


async def test_direct_messages_are_independent(layer: RedisChannelLayer) -> None:
    """Direct sends to one channel give each receive() its own message."""
    [name] = await _members(layer, "unused", 1)
    await layer.send(name, {"type": "x", "items": [1]})
    await layer.send(name, {"type": "x", "items": [1]})
    first = await asyncio.wait_for(layer.receive(name), scaled(5))
    first["items"].append(2)
    second = await asyncio.wait_for(layer.receive(name), scaled(5))
    assert second == {"type": "x", "items": [1]}


async def test_bad_names_are_refused_on_every_call(layer: RedisChannelLayer) -> None:
    """receive() raises TypeError for an invalid name each time it is called, also after
    valid names were accepted."""
    [good] = await _members(layer, "unused", 1)
    await layer.send(good, {"type": "x"})
    assert await asyncio.wait_for(layer.receive(good), scaled(5)) == {"type": "x"}
    for _ in range(2):
        with pytest.raises(TypeError):
            await layer.receive("bad name!")
        with pytest.raises(TypeError):
            await layer.receive(["not", "a", "string"])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await layer.receive("x" * 200)


async def test_foreign_channel_is_refused_on_every_call(
    layer: RedisChannelLayer, redis_url: str
) -> None:
    """Receiving on another instance's process-specific channel raises RuntimeError on
    every call."""
    other = RedisChannelLayer(hosts=[redis_url], prefix=layer.prefix)
    foreign = await other.new_channel()
    try:
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await layer.receive(foreign)
    finally:
        await other.close()


async def test_receive_restarts_the_inbox_after_close(layer: RedisChannelLayer) -> None:
    """After close(), the next receive() starts collecting the inbox again."""
    [name] = await _members(layer, "unused", 1)
    await layer.send(name, {"type": "before"})
    assert await asyncio.wait_for(layer.receive(name), scaled(5)) == {"type": "before"}
    await layer.close()
    name = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(name))
    await asyncio.sleep(0)
    await layer.send(name, {"type": "after"})
    assert await asyncio.wait_for(waiting, scaled(5)) == {"type": "after"}


async def test_receive_restarts_a_dead_inbox_reader(redis_url: str) -> None:
    """If the inbox reader task has ended, the next receive() starts a new one and gets
    what was queued meanwhile (list layer: the inbox is buffered in Redis)."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=f"hot{uuid.uuid4().hex[:8]}")
    try:
        name = await layer.new_channel()
        await layer.send(name, {"type": "first"})
        assert await asyncio.wait_for(layer.receive(name), scaled(5)) == {"type": "first"}
        readers = list(layer._readers.values())
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await layer.send(name, {"type": "second"})
        assert await asyncio.wait_for(layer.receive(name), scaled(5)) == {"type": "second"}
    finally:
        await layer.flush()
        await layer.close()


def test_owner_requires_lowercase_hex_pid() -> None:
    """Only ``.<32 lowercase hex>!`` marks a process-specific channel; anything else in
    that place makes the name a plain channel."""
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    pid = "0123456789abcdef" * 2
    assert layer._owner(f"specific.{pid}!abc") == pid
    assert layer._owner(f"specific.{pid.upper()}!abc") is None
    assert layer._owner(f"specific.{pid[:-1]}g!abc") is None
    assert layer._owner(f"specific.{pid[:-1]} !abc") is None
    assert layer._owner(f"specific{pid}!abc") is None
    assert layer._owner("plain.channel") is None
    assert layer._owner("short!x") is None


def test_remembered_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table of names receive() accepted never grows past its limit."""
    monkeypatch.setattr(redis_core, "_NAME_CACHE_SIZE", 16)
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    for index in range(100):
        assert layer._check_receivable(f"plain.{index}") is None
        assert len(layer._receivable) <= 16
    own = f"specific.{layer.client_prefix}!abc"
    assert layer._check_receivable(own) == layer.client_prefix
    assert layer._receivable[own] == layer.client_prefix
