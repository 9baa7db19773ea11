"""The channel layer contract as a reusable pytest suite.

Every bayou layer (and any third-party layer that wants to claim compatibility) runs the
same tests. Subclass :class:`ChannelLayerConformance` in a test module whose class name
starts with ``Test`` and implement :meth:`~ChannelLayerConformance.make_layer`::

    from bayou.layers import InMemoryChannelLayer
    from bayou.testing.layers import ChannelLayerConformance

    class TestInMemoryLayer(ChannelLayerConformance):
        async def make_layer(self, **config):
            return InMemoryChannelLayer(**config)

The written contract is ``docs/topics/channel-layer-spec.md``; each test's docstring
names the rule it checks. Needs ``pytest`` and ``pytest-asyncio`` (``asyncio_mode =
"auto"``, or mark the subclass with ``pytest.mark.asyncio``).

Time: tests about expiry call :meth:`~ChannelLayerConformance.advance_time`, which
sleeps by default; a layer with an injectable clock can override it to run instantly.
Every wait is bounded and multiplied by ``BAYOU_TEST_TIMEOUT_SCALE``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bayou.exceptions import ChannelFull
from bayou.layers.base import BaseChannelLayer

__all__ = ["ChannelLayerConformance"]

_SCALE = float(os.environ.get("BAYOU_TEST_TIMEOUT_SCALE", "1") or "1")

Message = dict[str, Any]

INVALID_CHANNEL_NAMES: list[object] = [
    "",
    "has space",
    "has/slash",
    "two!bangs!here",
    "trailing.newline\n",
    "é-accent",
    "x" * 100,
    b"bytes.name",
    None,
    42,
]
INVALID_GROUP_NAMES: list[object] = [
    "",
    "has space",
    "local!name",
    "trailing.newline\n",
    "x" * 100,
    b"bytes.name",
    None,
]


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


class ChannelLayerConformance:
    """Tests every channel layer must pass; subclass and implement :meth:`make_layer`."""

    #: ``expiry`` (seconds) used by the expiry tests; messages are checked after
    #: ``expiry_margin`` times this.
    test_expiry: float = 1.0
    expiry_margin: float = 1.5
    #: bayou layers count drops (``stats()``, ``channel_stats()``); a third-party layer
    #: without those methods sets this to False.
    check_drop_counters: bool = True
    #: Seconds (before scaling) after which a test's tasks are cancelled.
    test_time_limit: float = 60.0

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        """A fresh, empty layer built with ``config`` (e.g. ``capacity=3``).

        Keys used by the suite: ``capacity``, ``channel_capacity``, ``expiry``,
        ``group_expiry``. The layer must not share state with other layers it returned.
        """
        raise NotImplementedError

    async def advance_time(self, layer: BaseChannelLayer, seconds: float) -> None:
        """Let ``seconds`` pass for ``layer`` (sleeps; override for a fake clock)."""
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float = 2.0) -> float:
        """A bound for one wait in the suite, scaled by BAYOU_TEST_TIMEOUT_SCALE."""
        return seconds * _SCALE

    @pytest.fixture(autouse=True)
    async def _time_limit(self) -> AsyncIterator[None]:
        """Cancel every task of the test's loop if a test runs past ``test_time_limit``.

        A layer that hangs then fails its test instead of stalling the whole run.
        """
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.timeout(self.test_time_limit), _cancel_all, loop)
        yield
        timer.cancel()

    @pytest.fixture
    async def layer(self) -> AsyncIterator[BaseChannelLayer]:
        """A default-configured layer, flushed and closed after the test."""
        layer = await self.make_layer()
        yield layer
        await self._dispose(layer)

    async def _dispose(self, layer: BaseChannelLayer) -> None:
        if "flush" in layer.extensions:
            await asyncio.wait_for(layer.flush(), self.timeout(10))
        close = getattr(layer, "close", None)
        if close is not None:
            await asyncio.wait_for(close(), self.timeout(10))

    async def _receive(self, layer: BaseChannelLayer, channel: str) -> Message:
        return await asyncio.wait_for(layer.receive(channel), self.timeout())

    async def _assert_empty(self, layer: BaseChannelLayer, channel: str) -> None:
        """Prove ``channel`` holds nothing by sending a marker and receiving it first."""
        await layer.send(channel, {"type": "conformance.marker"})
        assert await self._receive(layer, channel) == {"type": "conformance.marker"}

    # -- basics -----------------------------------------------------------------------

    async def test_is_a_base_channel_layer(self, layer: BaseChannelLayer) -> None:
        """Layers derive from BaseChannelLayer and declare the groups and flush extensions."""
        assert isinstance(layer, BaseChannelLayer)
        assert "groups" in layer.extensions
        assert "flush" in layer.extensions

    async def test_send_then_receive(self, layer: BaseChannelLayer) -> None:
        """A message sent to a channel is returned, equal, by receive() on that channel."""
        await layer.send("conformance.basic", {"type": "test.message", "text": "hi"})
        assert await self._receive(layer, "conformance.basic") == {
            "type": "test.message",
            "text": "hi",
        }

    async def test_receive_waits_for_a_later_send(self, layer: BaseChannelLayer) -> None:
        """receive() on an empty channel waits and returns the next message sent."""
        task = asyncio.ensure_future(layer.receive("conformance.wait"))
        await asyncio.sleep(0)
        assert not task.done()
        await layer.send("conformance.wait", {"type": "late"})
        assert await asyncio.wait_for(task, self.timeout()) == {"type": "late"}

    async def test_fifo_order(self, layer: BaseChannelLayer) -> None:
        """Messages from one sender on one channel are received in the order sent."""
        for index in range(20):
            await layer.send("conformance.fifo", {"type": "n", "index": index})
        received = [await self._receive(layer, "conformance.fifo") for _ in range(20)]
        assert [message["index"] for message in received] == list(range(20))

    async def test_channels_are_independent(self, layer: BaseChannelLayer) -> None:
        """A message is only delivered on the channel it was sent to."""
        await layer.send("conformance.one", {"type": "one"})
        await layer.send("conformance.two", {"type": "two"})
        assert await self._receive(layer, "conformance.two") == {"type": "two"}
        assert await self._receive(layer, "conformance.one") == {"type": "one"}

    async def test_message_value_types_round_trip(self, layer: BaseChannelLayer) -> None:
        """Every value type the spec allows survives a send/receive unchanged."""
        message = {
            "type": "types",
            "bytes": b"\x00\xffbinary",
            "text": "unicode \u2603",
            "int": 42,
            "max_int": 2**63 - 1,
            "min_int": -(2**63),
            "float": 1.5,
            "true": True,
            "false": False,
            "none": None,
            "list": [1, "two", b"three", [4.0]],
            "dict": {"nested": {"deeper": [None, True]}},
            "empty_list": [],
            "empty_dict": {},
        }
        await layer.send("conformance.types", message)
        assert await self._receive(layer, "conformance.types") == message

    async def test_one_megabyte_messages(self, layer: BaseChannelLayer) -> None:
        """Messages of 1 MB (bytes and text) are delivered intact."""
        payload = bytes(range(256)) * 4096
        text = "x" * (1024 * 1024)
        await layer.send("conformance.big", {"type": "big", "bytes": payload})
        await layer.send("conformance.big", {"type": "big", "text": text})
        first = await self._receive(layer, "conformance.big")
        second = await self._receive(layer, "conformance.big")
        assert first["bytes"] == payload
        assert second["text"] == text

    async def test_sender_mutation_does_not_reach_receiver(self, layer: BaseChannelLayer) -> None:
        """Changing a message (or its nested values) after send() does not change what arrives."""
        nested = [1, 2]
        message: Message = {"type": "mutable", "list": nested, "dict": {"a": 1}}
        await layer.send("conformance.mutation", message)
        message["type"] = "changed"
        nested.append(3)
        message["dict"]["a"] = 2
        assert await self._receive(layer, "conformance.mutation") == {
            "type": "mutable",
            "list": [1, 2],
            "dict": {"a": 1},
        }

    async def test_send_rejects_non_dict_messages(self, layer: BaseChannelLayer) -> None:
        """send() and group_send() raise TypeError for a message that is not a dict."""
        with pytest.raises(TypeError):
            await layer.send("conformance.bad", ["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await layer.group_send("conformance-group", "text")  # type: ignore[arg-type]

    # -- names ------------------------------------------------------------------------

    async def test_invalid_channel_names_raise_type_error(self, layer: BaseChannelLayer) -> None:
        """Bad channel names (type, length, characters, several !) raise TypeError everywhere."""
        for name in INVALID_CHANNEL_NAMES:
            with pytest.raises(TypeError):
                await layer.send(name, {"type": "x"})  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await layer.receive(name)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await layer.group_add("conformance-group", name)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await layer.group_discard("conformance-group", name)  # type: ignore[arg-type]

    async def test_invalid_group_names_raise_type_error(self, layer: BaseChannelLayer) -> None:
        """Bad group names (including any !) raise TypeError in every group method."""
        for name in INVALID_GROUP_NAMES:
            with pytest.raises(TypeError):
                await layer.group_add(name, "conformance.member")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await layer.group_discard(name, "conformance.member")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await layer.group_send(name, {"type": "x"})  # type: ignore[arg-type]

    async def test_longest_valid_names(self, layer: BaseChannelLayer) -> None:
        """Names of 99 characters (MAX_NAME_LENGTH - 1) are accepted."""
        channel = "c" * (layer.MAX_NAME_LENGTH - 1)
        group = "g" * (layer.MAX_NAME_LENGTH - 1)
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "long"})
        assert await self._receive(layer, channel) == {"type": "long"}

    async def test_name_error_message(self, layer: BaseChannelLayer) -> None:
        """The TypeError text is Channels' ("Channel name must be a valid unicode string...")."""
        with pytest.raises(TypeError, match=r"^Channel name must be a valid unicode string"):
            await layer.send("bad name", {"type": "x"})
        with pytest.raises(TypeError, match=r"^Group name must be a valid unicode string"):
            await layer.group_add("bad name", "conformance.ok")

    # -- process-specific channels ----------------------------------------------------

    async def test_new_channel_names(self, layer: BaseChannelLayer) -> None:
        """new_channel() returns distinct valid names containing one !, starting with the prefix."""
        names = {await layer.new_channel() for _ in range(200)}
        assert len(names) == 200
        for name in names:
            assert layer.require_valid_channel_name(name)
            assert name.count("!") == 1
        custom = await layer.new_channel(prefix="worker")
        assert custom.startswith("worker")
        assert re.fullmatch(layer.channel_name_regex, custom)

    async def test_new_channel_send_receive(self, layer: BaseChannelLayer) -> None:
        """A process-specific channel from new_channel() carries messages like any channel."""
        first = await layer.new_channel()
        second = await layer.new_channel()
        await layer.send(first, {"type": "first"})
        await layer.send(second, {"type": "second"})
        assert await self._receive(layer, second) == {"type": "second"}
        assert await self._receive(layer, first) == {"type": "first"}

    # -- capacity ---------------------------------------------------------------------

    async def test_capacity_raises_channel_full(self) -> None:
        """send() raises ChannelFull at `capacity` unread messages; receiving frees room."""
        layer = await self.make_layer(capacity=3)
        try:
            for index in range(3):
                await layer.send("conformance.full", {"type": "n", "index": index})
            with pytest.raises(ChannelFull):
                await layer.send("conformance.full", {"type": "n", "index": 3})
            assert (await self._receive(layer, "conformance.full"))["index"] == 0
            await layer.send("conformance.full", {"type": "n", "index": 4})
            received = [await self._receive(layer, "conformance.full") for _ in range(3)]
            assert [message["index"] for message in received] == [1, 2, 4]
        finally:
            await self._dispose(layer)

    async def test_channel_capacity_patterns(self) -> None:
        """channel_capacity globs and compiled regexes override capacity; first match wins."""
        layer = await self.make_layer(
            capacity=5,
            channel_capacity={"conformance.tiny*": 1, re.compile(r"^conformance\.re"): 2},
        )
        try:
            assert layer.get_capacity("conformance.tiny.a") == 1
            assert layer.get_capacity("conformance.regex") == 2
            assert layer.get_capacity("conformance.other") == 5
            await layer.send("conformance.tiny.a", {"type": "x"})
            with pytest.raises(ChannelFull):
                await layer.send("conformance.tiny.a", {"type": "x"})
            await layer.send("conformance.regex", {"type": "x"})
            await layer.send("conformance.regex", {"type": "x"})
            with pytest.raises(ChannelFull):
                await layer.send("conformance.regex", {"type": "x"})
        finally:
            await self._dispose(layer)

    async def test_group_send_never_raises_channel_full(self) -> None:
        """group_send() to a member at capacity returns normally; other members still get it.

        The message dropped for the full member is counted: ``stats().dropped_full`` and
        ``channel_stats(member).dropped`` (bayou layers; see ``check_drop_counters``).
        """
        layer = await self.make_layer(capacity=1)
        try:
            await layer.group_add("conformance-full", "conformance.stuck")
            await layer.group_add("conformance-full", "conformance.free")
            await layer.send("conformance.stuck", {"type": "filler"})
            await asyncio.wait_for(
                layer.group_send("conformance-full", {"type": "group"}), self.timeout(5)
            )
            assert await self._receive(layer, "conformance.free") == {"type": "group"}
            assert await self._receive(layer, "conformance.stuck") == {"type": "filler"}
            await self._assert_empty(layer, "conformance.stuck")
            if self.check_drop_counters:
                counting: Any = layer
                assert counting.stats().dropped_full == 1
                assert counting.channel_stats("conformance.stuck").dropped == 1
        finally:
            await self._dispose(layer)

    # -- expiry -----------------------------------------------------------------------

    async def test_unread_messages_expire(self) -> None:
        """A message not received within `expiry` seconds is discarded."""
        layer = await self.make_layer(expiry=self.test_expiry)
        try:
            await layer.send("conformance.expiry", {"type": "old"})
            await self.advance_time(layer, self.test_expiry * self.expiry_margin)
            await layer.send("conformance.expiry", {"type": "new"})
            assert await self._receive(layer, "conformance.expiry") == {"type": "new"}
        finally:
            await self._dispose(layer)

    async def test_expired_messages_free_capacity(self) -> None:
        """Expired messages no longer count against capacity."""
        layer = await self.make_layer(expiry=self.test_expiry, capacity=1)
        try:
            await layer.send("conformance.expiry.full", {"type": "old"})
            await self.advance_time(layer, self.test_expiry * self.expiry_margin)
            await layer.send("conformance.expiry.full", {"type": "new"})
            assert await self._receive(layer, "conformance.expiry.full") == {"type": "new"}
        finally:
            await self._dispose(layer)

    # -- groups -----------------------------------------------------------------------

    async def test_group_send_reaches_every_member(self, layer: BaseChannelLayer) -> None:
        """group_send() delivers one copy of the message to each member channel."""
        members = [f"conformance.member{index}" for index in range(5)]
        for member in members:
            await layer.group_add("conformance-group", member)
        await layer.group_send("conformance-group", {"type": "hello", "list": [1]})
        for member in members:
            assert await self._receive(layer, member) == {"type": "hello", "list": [1]}
            await self._assert_empty(layer, member)

    async def test_group_members_get_independent_copies(self, layer: BaseChannelLayer) -> None:
        """A member mutating its received group message does not affect another member's copy."""
        await layer.group_add("conformance-copies", "conformance.a")
        await layer.group_add("conformance-copies", "conformance.b")
        await layer.group_send("conformance-copies", {"type": "m", "nested": {"list": [1]}})
        first = await self._receive(layer, "conformance.a")
        first["nested"]["list"].append(2)
        first["type"] = "changed"
        assert await self._receive(layer, "conformance.b") == {
            "type": "m",
            "nested": {"list": [1]},
        }

    async def test_group_add_twice_delivers_once(self, layer: BaseChannelLayer) -> None:
        """Adding a channel to a group twice still delivers each group message once."""
        await layer.group_add("conformance-twice", "conformance.twice")
        await layer.group_add("conformance-twice", "conformance.twice")
        await layer.group_send("conformance-twice", {"type": "once"})
        assert await self._receive(layer, "conformance.twice") == {"type": "once"}
        await self._assert_empty(layer, "conformance.twice")

    async def test_group_discard(self, layer: BaseChannelLayer) -> None:
        """A discarded channel gets no further group messages; the others still do."""
        await layer.group_add("conformance-discard", "conformance.stay")
        await layer.group_add("conformance-discard", "conformance.leave")
        await layer.group_discard("conformance-discard", "conformance.leave")
        await layer.group_send("conformance-discard", {"type": "after"})
        assert await self._receive(layer, "conformance.stay") == {"type": "after"}
        await self._assert_empty(layer, "conformance.leave")

    async def test_group_discard_of_non_member_is_a_no_op(self, layer: BaseChannelLayer) -> None:
        """group_discard() of a channel (or group) that was never added does nothing."""
        await layer.group_discard("conformance-never", "conformance.nobody")
        await layer.group_add("conformance-some", "conformance.someone")
        await layer.group_discard("conformance-some", "conformance.nobody")
        await layer.group_send("conformance-some", {"type": "still"})
        assert await self._receive(layer, "conformance.someone") == {"type": "still"}

    async def test_group_send_to_empty_group(self, layer: BaseChannelLayer) -> None:
        """group_send() to a group without members returns without error and keeps nothing.

        A channel that joins the group afterwards does not receive the earlier message.
        """
        await layer.group_send("conformance-empty", {"type": "nobody"})
        await layer.group_add("conformance-empty", "conformance.joined.later")
        await self._assert_empty(layer, "conformance.joined.later")

    async def test_groups_are_independent(self, layer: BaseChannelLayer) -> None:
        """A channel in two groups receives messages from both; other groups don't leak in."""
        await layer.group_add("conformance-red", "conformance.both")
        await layer.group_add("conformance-blue", "conformance.both")
        await layer.group_add("conformance-blue", "conformance.blue")
        await layer.group_send("conformance-red", {"type": "red"})
        await layer.group_send("conformance-blue", {"type": "blue"})
        assert await self._receive(layer, "conformance.both") == {"type": "red"}
        assert await self._receive(layer, "conformance.both") == {"type": "blue"}
        assert await self._receive(layer, "conformance.blue") == {"type": "blue"}
        await self._assert_empty(layer, "conformance.blue")

    async def test_group_order_from_one_sender(self, layer: BaseChannelLayer) -> None:
        """Consecutive group_send() calls from one task arrive in order at every member."""
        for member in ("conformance.o1", "conformance.o2"):
            await layer.group_add("conformance-order", member)
        for index in range(30):
            await layer.group_send("conformance-order", {"type": "n", "index": index})
        for member in ("conformance.o1", "conformance.o2"):
            received = [await self._receive(layer, member) for _ in range(30)]
            assert [message["index"] for message in received] == list(range(30))

    async def test_group_with_process_specific_members(self, layer: BaseChannelLayer) -> None:
        """Channels from new_channel() can be group members."""
        members = [await layer.new_channel() for _ in range(3)]
        for member in members:
            await layer.group_add("conformance-local", member)
        await layer.group_send("conformance-local", {"type": "local"})
        for member in members:
            assert await self._receive(layer, member) == {"type": "local"}

    async def test_group_membership_expires(self) -> None:
        """A member older than `group_expiry` seconds no longer receives group messages."""
        layer = await self.make_layer(group_expiry=self.test_expiry)
        try:
            await layer.group_add("conformance-expiring", "conformance.gone")
            await self.advance_time(layer, self.test_expiry * self.expiry_margin)
            await layer.group_add("conformance-expiring", "conformance.fresh")
            await layer.group_send("conformance-expiring", {"type": "late"})
            assert await self._receive(layer, "conformance.fresh") == {"type": "late"}
            await self._assert_empty(layer, "conformance.gone")
        finally:
            await self._dispose(layer)

    async def test_group_add_refreshes_membership(self) -> None:
        """Adding a member again restarts its group_expiry clock."""
        layer = await self.make_layer(group_expiry=self.test_expiry)
        try:
            await layer.group_add("conformance-refresh", "conformance.kept")
            await self.advance_time(layer, self.test_expiry * 0.6)
            await layer.group_add("conformance-refresh", "conformance.kept")
            await self.advance_time(layer, self.test_expiry * 0.6)
            await layer.group_send("conformance-refresh", {"type": "kept"})
            assert await self._receive(layer, "conformance.kept") == {"type": "kept"}
        finally:
            await self._dispose(layer)

    # -- flush ------------------------------------------------------------------------

    async def test_flush_discards_messages_and_groups(self, layer: BaseChannelLayer) -> None:
        """flush() empties every channel and removes every group membership."""
        await layer.send("conformance.flushed", {"type": "gone"})
        await layer.group_add("conformance-flushed", "conformance.member")
        await layer.flush()
        await layer.group_send("conformance-flushed", {"type": "gone too"})
        await self._assert_empty(layer, "conformance.flushed")
        await self._assert_empty(layer, "conformance.member")

    # -- concurrency ------------------------------------------------------------------

    async def test_many_receivers_share_a_channel(self) -> None:
        """Concurrent receivers on one channel get every message exactly once between them."""
        layer = await self.make_layer(capacity=1000)
        try:
            total = 300
            results: list[int] = []

            async def reader() -> None:
                while len(results) < total:
                    try:
                        message = await asyncio.wait_for(
                            layer.receive("conformance.shared"), self.timeout(0.5)
                        )
                    except TimeoutError:
                        return
                    results.append(message["index"])

            readers = [asyncio.ensure_future(reader()) for _ in range(10)]
            await asyncio.sleep(0)
            for index in range(total):
                await layer.send("conformance.shared", {"type": "n", "index": index})
            await asyncio.wait_for(asyncio.gather(*readers), self.timeout(10))
            assert sorted(results) == list(range(total))
        finally:
            await self._dispose(layer)

    async def test_many_channels_concurrently(self) -> None:
        """Senders and receivers on 50 channels at once each get exactly their own messages."""
        layer = await self.make_layer(capacity=1000)
        try:

            async def pair(index: int) -> list[int]:
                channel = f"conformance.pair{index}"
                for number in range(20):
                    await layer.send(channel, {"type": "n", "owner": index, "n": number})
                got = []
                for _ in range(20):
                    message = await self._receive(layer, channel)
                    assert message["owner"] == index
                    got.append(message["n"])
                return got

            results = await asyncio.wait_for(
                asyncio.gather(*(pair(index) for index in range(50))), self.timeout(10)
            )
            assert all(result == list(range(20)) for result in results)
        finally:
            await self._dispose(layer)

    async def test_cancelled_receive_loses_nothing(self, layer: BaseChannelLayer) -> None:
        """Cancelling a waiting receive() does not consume the next message."""
        task = asyncio.ensure_future(layer.receive("conformance.cancel"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await layer.send("conformance.cancel", {"type": "kept"})
        assert await self._receive(layer, "conformance.cancel") == {"type": "kept"}
