"""InMemoryChannelLayer against a simple model, driven by Hypothesis.

Random sequences of send / receive / group_add / group_discard / group_send / flush
and jumps of a fake clock past ``expiry`` (no waiting: group_send_timeout=0) must give
the same messages, errors and counters as a list-per-channel model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bayou.exceptions import ChannelFull
from bayou.layers import InMemoryChannelLayer

CHANNELS = st.sampled_from(["a", "b", "c", "specific.x!1", "specific.x!2"])
GROUPS = st.sampled_from(["g1", "g2"])
CAPACITY = 3
EXPIRY = 10.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LayerModel(RuleBasedStateMachine):
    """Compares the layer with per-channel lists and per-group sets."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.layer = InMemoryChannelLayer(
            capacity=CAPACITY, expiry=EXPIRY, group_send_timeout=0, clock=self.clock
        )
        # channel -> [(deadline, message)], oldest first
        self.queues: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.groups: dict[str, set[str]] = {}
        self.counter = 0
        self.dropped = 0
        self.channel_full = 0
        self.expired = 0

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.loop.close()

    def next_message(self) -> dict[str, Any]:
        self.counter += 1
        return {"type": "m", "n": self.counter, "nested": [self.counter]}

    @rule(channel=CHANNELS)
    def send(self, channel: str) -> None:
        message = self.next_message()
        queue = self.queues.setdefault(channel, [])
        if len(queue) >= CAPACITY:
            self.channel_full += 1
            try:
                self.run(self.layer.send(channel, message))
            except ChannelFull:
                return
            raise AssertionError("send() to a full channel did not raise ChannelFull")
        self.run(self.layer.send(channel, message))
        queue.append((self.clock.now + EXPIRY, message))

    @precondition(lambda self: any(self.queues.values()))
    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        channel = data.draw(st.sampled_from(sorted(c for c, q in self.queues.items() if q)))
        _, expected = self.queues[channel].pop(0)
        assert self.run(self.layer.receive(channel)) == expected

    @rule(group=GROUPS, channel=CHANNELS)
    def group_add(self, group: str, channel: str) -> None:
        self.run(self.layer.group_add(group, channel))
        self.groups.setdefault(group, set()).add(channel)

    @rule(group=GROUPS, channel=CHANNELS)
    def group_discard(self, group: str, channel: str) -> None:
        self.run(self.layer.group_discard(group, channel))
        self.groups.get(group, set()).discard(channel)

    @rule(group=GROUPS)
    def group_send(self, group: str) -> None:
        message = self.next_message()
        self.run(self.layer.group_send(group, message))
        for channel in self.groups.get(group, set()):
            queue = self.queues.setdefault(channel, [])
            if len(queue) >= CAPACITY:
                self.dropped += 1
            else:
                queue.append((self.clock.now + EXPIRY, message))

    @rule(seconds=st.sampled_from([1.0, 4.0, EXPIRY + 1]))
    def advance(self, seconds: float) -> None:
        """Move the clock; messages whose deadline has come expire.

        A channel with an expired message leaves all its groups (Channels' rule). The
        layer notices lazily; its sweep (run here directly, as any call would) handles
        every due channel of this small model in one go.
        """
        self.clock.now += seconds
        for channel, queue in self.queues.items():
            expired = [entry for entry in queue if entry[0] <= self.clock.now]
            if expired:
                self.expired += len(expired)
                del queue[: len(expired)]
                for members in self.groups.values():
                    members.discard(channel)
        self.layer._run_sweep(self.clock.now)

    @rule()
    def flush(self) -> None:
        self.run(self.layer.flush())
        self.queues.clear()
        self.groups.clear()

    @invariant()
    def counters_match(self) -> None:
        stats = self.layer.stats()
        assert stats.queued == sum(len(q) for q in self.queues.values())
        assert stats.dropped_full == self.dropped
        assert stats.channel_full == self.channel_full
        assert stats.expired == self.expired
        assert stats.groups == sum(1 for members in self.groups.values() if members)
        for channel, queue in self.queues.items():
            assert self.layer.channel_stats(channel).queued == len(queue)

    @invariant()
    def no_idle_state_is_kept_without_reason(self) -> None:
        for name, state in self.layer.channels.items():
            assert (
                state.queue
                or state.waiters
                or name in self.layer._memberships
                or (state.sweep_token != 0)
            )


TestLayerModel = LayerModel.TestCase
TestLayerModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
