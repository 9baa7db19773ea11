"""InMemoryChannelLayer beyond the shared contract: back-pressure, drop visibility, cost."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bayou.exceptions import ChannelFull
from bayou.layers import InMemoryChannelLayer
from bayou.layers.stats import DropEvent
from tests.support.timeouts import scaled


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _drain(layer: InMemoryChannelLayer, channel: str, count: int) -> list[dict[str, Any]]:
    return [await asyncio.wait_for(layer.receive(channel), scaled(5)) for _ in range(count)]


# -- the scenario ------------------------------------------------------------------


@pytest.mark.slow
async def test_burst_into_group_loses_nothing_at_default_settings() -> None:
    """10 publishers x 500 back-to-back group_sends into 100 members: all 5000 arrive, in order.

    Default settings (capacity 100): group_send waits for room instead of dropping.
    """
    layer = InMemoryChannelLayer()
    members = [f"member{index}" for index in range(100)]
    for member in members:
        await layer.group_add("room", member)
    received: dict[str, list[tuple[int, int]]] = {member: [] for member in members}

    async def consume(member: str) -> None:
        for _ in range(5000):
            message = await layer.receive(member)
            received[member].append((message["publisher"], message["n"]))

    async def publish(publisher: int) -> None:
        for n in range(500):
            await layer.group_send("room", {"type": "chat", "publisher": publisher, "n": n})

    consumers = [asyncio.ensure_future(consume(member)) for member in members]
    await asyncio.wait_for(
        asyncio.gather(*(publish(p) for p in range(10)), *consumers), scaled(120)
    )
    stats = layer.stats()
    assert stats.dropped == 0
    assert stats.group_deliveries == 500_000
    for messages in received.values():
        assert len(messages) == 5000
        for publisher in range(10):
            assert [n for p, n in messages if p == publisher] == list(range(500))


async def test_without_backpressure_every_drop_is_counted_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """group_send_timeout=0 drops like Channels, but each drop is counted and reported.

    Counters per layer, channel and group add up with what was received; on_drop sees
    every drop; the log gets one rate-limited WARNING.
    """
    events: list[DropEvent] = []
    layer = InMemoryChannelLayer(group_send_timeout=0, on_drop=events.append)
    members = [f"member{index}" for index in range(10)]
    for member in members:
        await layer.group_add("room", member)
    with caplog.at_level(logging.WARNING, logger="bayou.layers"):
        for publisher in range(10):
            for n in range(50):
                await layer.group_send("room", {"type": "x", "publisher": publisher, "n": n})
    for member in members:
        assert len(await _drain(layer, member, 100)) == 100
        assert layer.channel_stats(member).dropped == 400
    stats = layer.stats()
    assert stats.dropped_full == stats.dropped == 4000
    assert stats.group_deliveries == 1000
    assert stats.received == 1000
    assert layer.group_stats("room").dropped == 4000
    assert len(events) == 4000
    assert {event.reason for event in events} == {"full"}
    assert {event.group for event in events} == {"room"}
    assert events[0].message == {"type": "x", "publisher": 2, "n": 0}
    warnings = [r for r in caplog.records if r.name == "bayou.layers"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "member0" in warnings[0].getMessage()


# -- back-pressure ----------------------------------------------------------------------


async def test_group_send_waits_for_room() -> None:
    """A group_send to a full member waits until the member receives, then delivers."""
    layer = InMemoryChannelLayer(capacity=1, group_send_timeout=scaled(30))
    await layer.group_add("g", "slow")
    await layer.send("slow", {"type": "first"})
    sending = asyncio.ensure_future(layer.group_send("g", {"type": "second"}))
    await asyncio.sleep(0)
    assert not sending.done()
    assert await layer.receive("slow") == {"type": "first"}
    await asyncio.wait_for(sending, scaled(5))
    assert await layer.receive("slow") == {"type": "second"}
    stats = layer.stats()
    assert (stats.waits, stats.dropped) == (1, 0)


async def test_waiting_group_send_does_not_hold_up_other_members() -> None:
    """Members with room get the message before the call starts waiting for a full one."""
    layer = InMemoryChannelLayer(capacity=1, group_send_timeout=scaled(30))
    await layer.group_add("g", "full")
    await layer.group_add("g", "free")
    await layer.send("full", {"type": "filler"})
    sending = asyncio.ensure_future(layer.group_send("g", {"type": "news"}))
    assert await asyncio.wait_for(layer.receive("free"), scaled(5)) == {"type": "news"}
    assert not sending.done()
    await _drain(layer, "full", 2)
    await asyncio.wait_for(sending, scaled(5))


async def test_member_that_stays_full_becomes_congested() -> None:
    """After one timed-out wait a member is congested: later sends drop for it at once.

    Receiving until the queue is half empty clears the flag.
    """
    layer = InMemoryChannelLayer(capacity=2, group_send_timeout=0.01)
    await layer.group_add("g", "dead")
    for n in range(2):
        await layer.group_send("g", {"type": "x", "n": n})
    await layer.group_send("g", {"type": "x", "n": 2})
    assert layer.channel_stats("dead").congested
    assert layer.stats().waits == 1
    await layer.group_send("g", {"type": "x", "n": 3})
    assert layer.stats().waits == 1
    assert layer.channel_stats("dead").dropped == 2
    await _drain(layer, "dead", 1)
    assert not layer.channel_stats("dead").congested


async def test_congested_member_still_gets_messages_it_has_room_for() -> None:
    """Congestion only stops the waiting: a congested member with room gets the message."""
    layer = InMemoryChannelLayer(capacity=4, group_send_timeout=0.01)
    await layer.group_add("g", "slow")
    for n in range(5):
        await layer.group_send("g", {"type": "x", "n": n})
    assert layer.channel_stats("slow").congested
    await _drain(layer, "slow", 1)
    assert layer.channel_stats("slow").congested
    await layer.group_send("g", {"type": "x", "n": 5})
    await layer.group_send("g", {"type": "x", "n": 6})
    assert layer.stats().waits == 1
    assert [m["n"] for m in await _drain(layer, "slow", 4)] == [1, 2, 3, 5]
    assert layer.channel_stats("slow").dropped == 2
    assert not layer.channel_stats("slow").congested


async def test_waiting_group_send_survives_the_member_going_idle() -> None:
    """A woken group_send still delivers if the member went idle and was forgotten meanwhile."""
    layer = InMemoryChannelLayer(capacity=1, group_send_timeout=scaled(30))
    await layer.group_add("g", "m")
    await layer.send("m", {"type": "first"})
    sending = asyncio.ensure_future(layer.group_send("g", {"type": "second"}))
    await asyncio.sleep(0)
    assert await layer.receive("m") == {"type": "first"}
    await layer.group_discard("g", "m")
    assert "m" not in layer.channels
    await asyncio.wait_for(sending, scaled(5))
    assert await asyncio.wait_for(layer.receive("m"), scaled(5)) == {"type": "second"}
    assert layer.stats().dropped == 0


async def test_cancelled_group_send_counts_undelivered_members() -> None:
    """Cancelling a waiting group_send counts the message as dropped for the full members."""
    layer = InMemoryChannelLayer(capacity=1, group_send_timeout=scaled(30))
    await layer.group_add("g", "full")
    await layer.send("full", {"type": "filler"})
    sending = asyncio.ensure_future(layer.group_send("g", {"type": "x"}))
    await asyncio.sleep(0)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert layer.stats().dropped_full == 1
    assert layer.channel_stats("full").dropped == 1


async def test_flush_releases_waiting_group_send() -> None:
    """flush() ends a waiting group_send without delivering or counting a drop."""
    layer = InMemoryChannelLayer(capacity=1, group_send_timeout=scaled(30))
    await layer.group_add("g", "full")
    await layer.send("full", {"type": "filler"})
    sending = asyncio.ensure_future(layer.group_send("g", {"type": "x"}))
    await asyncio.sleep(0)
    await layer.flush()
    await asyncio.wait_for(sending, scaled(5))
    assert layer.stats().dropped == 0
    assert layer.stats().queued == 0


# -- flush, receive -----------------------------------------------------------------------


async def test_flush_keeps_pending_receive_working() -> None:
    """A receive() waiting during flush() gets the next message sent after it."""
    layer = InMemoryChannelLayer()
    receiving = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0)
    await layer.flush()
    await layer.send("c", {"type": "after"})
    assert await asyncio.wait_for(receiving, scaled(5)) == {"type": "after"}


async def test_receive_from_another_event_loop() -> None:
    """A receive() waiting on another thread's loop is woken by a send from this loop."""
    layer = InMemoryChannelLayer()
    loop = asyncio.get_running_loop()
    other = loop.run_in_executor(None, lambda: asyncio.run(layer.receive("threaded")))
    for _ in range(500):
        state = layer.channels.get("threaded")
        if state is not None and state.waiters:
            break
        await asyncio.sleep(0.01)
    await layer.send("threaded", {"type": "hop"})
    assert await asyncio.wait_for(other, scaled(5)) == {"type": "hop"}


# -- expiry -------------------------------------------------------------------------------


async def test_expired_messages_are_counted_and_reported() -> None:
    """Unread messages past expiry are counted per channel and layer and passed to on_drop."""
    clock = FakeClock()
    events: list[DropEvent] = []
    layer = InMemoryChannelLayer(expiry=10, clock=clock, on_drop=events.append)
    for n in range(3):
        await layer.send("c", {"type": "old", "n": n})
    clock.now += 11
    await layer.send("c", {"type": "new"})
    assert await layer.receive("c") == {"type": "new"}
    assert layer.channel_stats("c").expired == 3
    assert layer.stats().expired == layer.stats().dropped == 3
    assert [(e.reason, e.channel, e.group, e.message["n"]) for e in events] == [
        ("expired", "c", None, 0),
        ("expired", "c", None, 1),
        ("expired", "c", None, 2),
    ]


async def test_expiry_removes_the_channel_from_its_groups() -> None:
    """A channel with an expired message is presumed dead and leaves its groups (Channels)."""
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.group_add("g", "dead")
    await layer.group_add("g", "alive")
    await layer.group_send("g", {"type": "first"})
    await layer.receive("alive")
    clock.now += 11
    await layer.group_send("g", {"type": "second"})
    assert layer.group_stats("g").members == 1
    assert await layer.receive("alive") == {"type": "second"}
    assert layer.channel_stats("dead").queued == 0


async def test_group_add_after_expiry_keeps_the_new_membership() -> None:
    """Expired messages noticed at group_add end the old memberships, not the new one."""
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.group_add("old", "slow")
    await layer.send("slow", {"type": "stale"})
    clock.now += 11
    await layer.group_add("new", "slow")
    await layer.group_send("old", {"type": "to old"})
    await layer.group_send("new", {"type": "to new"})
    assert await layer.receive("slow") == {"type": "to new"}
    assert layer.group_stats("old").members == 0
    assert layer.channel_stats("slow").expired == 1


async def test_group_membership_expiry_is_counted() -> None:
    """Members older than group_expiry are removed on the next group_send and counted."""
    clock = FakeClock()
    layer = InMemoryChannelLayer(group_expiry=10, clock=clock)
    await layer.group_add("g", "old")
    clock.now += 11
    await layer.group_send("g", {"type": "x"})
    assert layer.stats().group_members_expired == 1
    assert layer.stats().groups == 0
    assert "g" not in layer.groups


async def test_sweep_expires_untouched_channels_a_batch_at_a_time() -> None:
    """Channels nobody touches are expired by later calls, 32 channels per call at most.

    Their counters stay readable for one more expiry period; then the state is forgotten.
    """
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    for index in range(100):
        await layer.send(f"idle{index}", {"type": "x"})
    clock.now += 11
    await layer.group_send("nobody", {"type": "x"})
    assert layer.stats().expired == 32
    for _ in range(3):
        await layer.group_send("nobody", {"type": "x"})
    stats = layer.stats()
    assert (stats.expired, stats.channels, stats.queued) == (100, 100, 0)
    assert layer.channel_stats("idle7").expired == 1
    clock.now += 11
    for _ in range(4):
        await layer.group_send("nobody", {"type": "x"})
    assert layer.stats().channels == 0
    assert layer.channel_stats("idle7").expired == 0


# -- cost ---------------------------------------------------------------------------------


class CountingDict(dict[str, Any]):
    """A dict recording which keys are looked up and whether it is ever iterated."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.touched: list[str] = []
        self.scans = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.touched.append(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.touched.append(key)
        return super().__getitem__(key)

    def __iter__(self) -> Any:
        self.scans += 1
        return super().__iter__()

    def values(self) -> Any:
        self.scans += 1
        return super().values()

    def items(self) -> Any:
        self.scans += 1
        return super().items()


async def test_calls_do_not_scan_unrelated_channels() -> None:
    """With 5000 busy channels, group_send looks up only the members and receive one channel."""
    layer = InMemoryChannelLayer()
    for index in range(5000):
        await layer.send(f"busy{index}", {"type": "x"})
        await layer.group_add(f"other{index % 50}", f"busy{index}")
    for member in ("a", "b", "c"):
        await layer.group_add("small", member)
    await layer.group_send("small", {"type": "x"})
    spy = CountingDict(layer.channels)
    layer.channels = spy
    await layer.group_send("small", {"type": "y"})
    assert sorted(set(spy.touched)) == ["a", "b", "c"]
    spy.touched.clear()
    await layer.receive("a")
    await layer.send("b", {"type": "z"})
    assert sorted(set(spy.touched)) == ["a", "b"]
    assert spy.scans == 0


async def test_group_send_to_1000_members_runs_inline() -> None:
    """A broadcast to 1000 members completes without creating tasks and queues one per member."""
    layer = InMemoryChannelLayer()
    for index in range(1000):
        await layer.group_add("big", f"m{index}")
    before = len(asyncio.all_tasks())
    await layer.group_send("big", {"type": "x", "payload": "y" * 100})
    assert len(asyncio.all_tasks()) == before
    assert layer.stats().queued == 1000
    assert await layer.receive("m999") == {"type": "x", "payload": "y" * 100}


# -- copies -------------------------------------------------------------------------------


async def test_direct_send_hands_over_a_private_copy() -> None:
    """The receiver gets an equal dict that is not the sender's object (nested lists too)."""
    layer = InMemoryChannelLayer()
    message = {"type": "x", "list": [1]}
    await layer.send("c", message)
    received = await layer.receive("c")
    assert received == message
    assert received is not message
    assert received["list"] is not message["list"]


async def test_group_members_get_distinct_objects() -> None:
    """Each member gets its own dict (flat and nested), never shared with another member."""
    layer = InMemoryChannelLayer()
    await layer.group_add("g", "a")
    await layer.group_add("g", "b")
    await layer.group_send("g", {"type": "flat"})
    await layer.group_send("g", {"type": "nested", "inner": {"k": [1]}})
    a_flat, a_nested = await _drain(layer, "a", 2)
    b_flat, b_nested = await _drain(layer, "b", 2)
    assert a_flat == b_flat and a_flat is not b_flat
    assert a_nested == b_nested and a_nested["inner"]["k"] is not b_nested["inner"]["k"]


async def test_other_value_types_are_deep_copied() -> None:
    """Values outside the spec's types (set, bytearray) are deep-copied, as Channels does."""
    layer = InMemoryChannelLayer()
    tags = {"a"}
    buffer = bytearray(b"ab")
    await layer.send("c", {"type": "x", "tags": tags, "buffer": buffer, "tuple": ([1],)})
    tags.add("b")
    buffer.append(0x63)
    received = await layer.receive("c")
    assert received == {"type": "x", "tags": {"a"}, "buffer": bytearray(b"ab"), "tuple": ([1],)}


async def test_reserved_key_is_rejected() -> None:
    """__asgi_channel__ is reserved for layers: send and group_send raise ValueError."""
    layer = InMemoryChannelLayer()
    with pytest.raises(ValueError, match="__asgi_channel__"):
        await layer.send("c", {"type": "x", "__asgi_channel__": "c"})
    with pytest.raises(ValueError, match="__asgi_channel__"):
        await layer.group_send("g", {"type": "x", "__asgi_channel__": "c"})


# -- misc ---------------------------------------------------------------------------------


async def test_new_channel_names_have_no_double_dot() -> None:
    """new_channel() joins prefix and "inmemory!" with exactly one dot."""
    layer = InMemoryChannelLayer()
    assert (await layer.new_channel()).startswith("specific.inmemory!")
    assert (await layer.new_channel("worker")).startswith("worker.inmemory!")
    assert ".." not in await layer.new_channel()


async def test_constructor_compatibility() -> None:
    """Channels' arguments and defaults are accepted; unknown keyword arguments are ignored."""
    layer = InMemoryChannelLayer(unknown_option=True)
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (60, 86400, 100)
    assert layer.extensions == ["groups", "flush"]
    assert layer.group_send_timeout == 1.0
    positional = InMemoryChannelLayer(5, 50, 7, {"a*": 1})
    assert (positional.expiry, positional.group_expiry, positional.capacity) == (5, 50, 7)
    assert positional.get_capacity("abc") == 1


async def test_channel_capacity_works() -> None:
    """channel_capacity patterns apply to sends (broken in Channels 4.3.2's in-memory layer)."""
    layer = InMemoryChannelLayer(channel_capacity={"small.*": 1})
    await layer.send("small.one", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("small.one", {"type": "x"})
    assert layer.channel_stats("small.one").capacity == 1
    assert layer.channel_stats("unknown.channel").capacity == 100
    assert layer.stats().channel_full == 1


async def test_gauges() -> None:
    """stats() reports the channels, groups and queued messages currently held."""
    layer = InMemoryChannelLayer()
    await layer.send("a", {"type": "x"})
    await layer.send("a", {"type": "x"})
    await layer.group_add("g", "b")
    stats = layer.stats()
    assert (stats.channels, stats.groups, stats.queued, stats.sent) == (1, 1, 2, 2)
    await layer.group_discard("g", "b")
    assert layer.stats().groups == 0


async def test_failing_on_drop_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """An exception from on_drop is logged on bayou.layers and does not reach group_send."""

    def broken(event: DropEvent) -> None:
        raise RuntimeError("callback bug")

    layer = InMemoryChannelLayer(capacity=1, group_send_timeout=0, on_drop=broken)
    await layer.group_add("g", "c")
    await layer.send("c", {"type": "x"})
    with caplog.at_level(logging.WARNING, logger="bayou.layers"):
        await layer.group_send("g", {"type": "y"})
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert layer.stats().dropped_full == 1


def record_drop(event: DropEvent) -> None:
    """An on_drop callback named by dotted path in a test."""
    RECORDED.append(event)


RECORDED: list[DropEvent] = []


async def test_on_drop_by_dotted_path() -> None:
    """on_drop may be given as a dotted path (so it can live in CHANNEL_LAYERS settings)."""
    RECORDED.clear()
    layer = InMemoryChannelLayer(
        capacity=1, group_send_timeout=0, on_drop="tests.layers.test_memory:record_drop"
    )
    await layer.group_add("g", "c")
    await layer.group_send("g", {"type": "x"})
    await layer.group_send("g", {"type": "y"})
    assert [(e.reason, e.message) for e in RECORDED] == [("full", {"type": "y"})]
    assert layer.on_drop is record_drop
