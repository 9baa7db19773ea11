"""The in-process half of the Redis layers: local queues, waiting receivers, local groups.

One :class:`LocalHub` per layer instance. The receive loop feeds it entries popped from
Redis (or published to it); ``receive()`` waits on it. Messages stay serialized until a
receiver takes them, so a message that expires unread is never decoded. Every receiver
gets its own independent message: a group message fanned out to several local members
is decoded once, by the first of them, and each member receives a private copy (dicts,
lists and tuples copied, immutable values shared, anything else deep-copied: the rule
of the in-memory layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from bayou.layers.copying import copy_value, is_flat
from bayou.layers.stats import (
    LAYER_COUNTERS,
    ChannelStats,
    DropEvent,
    DropReason,
    DropReporter,
    GroupStats,
)

__all__ = ["COUNTERS", "PRESSURE_LIMIT", "LocalHub", "QueuedMessage"]

logger = logging.getLogger("bayou.layers.redis")

Message = dict[str, Any]

#: A slow consumer may make the receive loop wait for it at most about this many times
#: ``group_send_timeout`` in a row (waiting time minus time the loop did not wait for it);
#: then it is marked congested and its group messages are dropped (counted) until it
#: has caught up to half its capacity.
PRESSURE_LIMIT = 10

#: Layer-wide counters, in :class:`~bayou.layers.stats.LayerStats` order.
COUNTERS = LAYER_COUNTERS


class QueuedMessage:
    """A message waiting in a local queue (still serialized)."""

    __slots__ = ("deadline", "direct", "group", "payload", "shared")

    def __init__(
        self,
        deadline: float,
        payload: bytes,
        group: str | None,
        direct: bool,
        shared: list[Any] | None = None,
    ) -> None:
        self.deadline = deadline
        self.payload = payload
        self.group = group
        #: A direct send() (counted in the owner's depth hash in Redis).
        self.direct = direct
        #: A group message fanned out to several local members: an empty list until
        #: the first receiver decodes ``payload``, then ``[message, flat]``; every
        #: receiver gets its own copy of ``message``.
        self.shared = shared

    def open(self, deserialize: Callable[[bytes], Any]) -> Message:
        """The message for one receiver: decoded, or a private copy of the shared decode."""
        shared = self.shared
        if shared is None:
            message: Message = deserialize(self.payload)
            return message
        if not shared:
            pristine = deserialize(self.payload)
            shared += (pristine, is_flat(pristine))
        if shared[1]:
            flat: Message = shared[0].copy()
            return flat
        nested: Message = copy_value(shared[0])
        return nested


class _LocalChannel:
    __slots__ = (
        "capacity",
        "congested",
        "dropped",
        "expired",
        "last_pop",
        "name",
        "pressure",
        "pressure_at",
        "queue",
        "room",
        "waiters",
    )

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.queue: deque[QueuedMessage] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.dropped = 0
        self.expired = 0
        # time.monotonic() of the last receive(): tells a slow consumer from a stalled one.
        self.last_pop = 0.0
        # True while group messages for it are dropped without waiting (it stalled).
        self.congested = False
        # Seconds the receive loop has recently waited for room in this queue (decays by
        # the time it spends not waiting for it, measured at pressure_at): bounds how
        # long one slow consumer can hold the process's other consumers back.
        self.pressure = 0.0
        self.pressure_at = 0.0
        # Resolved by receive() when the receive loop waits for room in this queue.
        self.room: asyncio.Future[None] | None = None


class LocalHub:
    """Local channel queues and local group membership of one layer instance."""

    def __init__(
        self,
        *,
        get_capacity: Callable[[str], int],
        group_expiry: float,
        deserialize: Callable[[bytes], Any],
        reporter: DropReporter,
        counters: dict[str, int],
        on_direct_done: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._get_capacity = get_capacity
        self.group_expiry = group_expiry
        self._deserialize = deserialize
        self._reporter = reporter
        self._counters = counters
        self._on_direct_done = on_direct_done
        self._clock = clock
        self.channels: dict[str, _LocalChannel] = {}
        #: group -> {local channel: join time (wall clock)}
        self.groups: dict[str, dict[str, float]] = {}
        self.memberships: dict[str, set[str]] = {}
        self._group_dropped: dict[str, int] = {}
        self.queued = 0

    # -- feeding ----------------------------------------------------------------------

    def deliver(self, channel: str, message: QueuedMessage, *, enforce_capacity: bool) -> bool:
        """Queue ``message`` on local ``channel``; False (and a counted drop) if full."""
        state = self._state(channel)
        if enforce_capacity and len(state.queue) >= state.capacity:
            self._drop(state, message, "full")
            self._forget_if_idle(state)
            return False
        state.queue.append(message)
        self.queued += 1
        _wake_first(state.waiters)
        return True

    def deliver_group(self, group: str, deadline: float, payload: bytes) -> int:
        """Hand a group message to this process's members of ``group``; returns how many."""
        members = self.groups.get(group)
        if not members:
            return 0
        cutoff = self._clock() - self.group_expiry
        delivered = 0
        # One QueuedMessage for all members (nothing mutates it); with several members
        # it is decoded once, by the first receiver, and each gets a private copy.
        shared: list[Any] | None = [] if len(members) > 1 else None
        queued = QueuedMessage(deadline, payload, group, False, shared)
        channels = self.channels
        for channel, joined in list(members.items()):
            if joined < cutoff:
                self.remove_member(group, channel)
                self._counters["group_members_expired"] += 1
                continue
            state = channels.get(channel)
            if state is not None and len(state.queue) < state.capacity:
                # deliver() inlined for the common case: this loop runs per member.
                state.queue.append(queued)
                self.queued += 1
                if state.waiters:
                    _wake_first(state.waiters)
                delivered += 1
            elif self.deliver(channel, queued, enforce_capacity=True):
                delivered += 1
        self._counters["group_deliveries"] += delivered
        return delivered

    # -- back-pressure ----------------------------------------------------------------

    def blocked(self, kind: str, name: str) -> _LocalChannel | None:
        """A full, live local channel that a group entry (``kind`` ``g`` for group
        ``name``, ``d`` for channel ``name``) would overflow, if any.

        Congested channels (ones that stalled before) are not waited for.
        """
        candidates: Iterable[str]
        if kind == "g":
            # Read-only loop over the live dict (no copy): this runs per group message.
            candidates = self.groups.get(name, ())
        elif kind == "d":
            candidates = (name,)
        else:
            return None
        channels = self.channels
        for channel in candidates:
            state = channels.get(channel)
            if state is not None and len(state.queue) >= state.capacity and not state.congested:
                return state
        return None

    async def wait_for_room(
        self,
        state: _LocalChannel,
        stall_after: float,
        *,
        started: float | None = None,
        max_wait: float | None = None,
    ) -> None:
        """Wait until ``state`` has room, as long as its consumer keeps receiving.

        If nothing is received from it for ``stall_after`` seconds (counted from
        ``started``, default now, or its last receive if later), it is marked congested
        (later group messages for it are dropped without waiting until it has caught up
        to half its capacity). It is also marked congested once the waits for it add up
        to ``PRESSURE_LIMIT * stall_after`` seconds (minus the time the loop spent not
        waiting for it): a consumer that receives, but too slowly, must not hold the
        process's other consumers back for ever. Returns early after ``max_wait``
        seconds, so that the caller can do periodic work (heartbeats) and call again
        with the same ``started``.
        """
        loop = asyncio.get_running_loop()
        if started is None:
            started = time.monotonic()
        give_up = None if max_wait is None else time.monotonic() + max_wait
        while len(state.queue) >= state.capacity and not state.congested:
            now = time.monotonic()
            state.pressure = max(0.0, state.pressure - (now - state.pressure_at))
            state.pressure_at = now
            remaining = max(started, state.last_pop) + stall_after - now
            if remaining <= 0 or state.pressure >= PRESSURE_LIMIT * stall_after:
                state.congested = True
                return
            remaining = min(remaining, PRESSURE_LIMIT * stall_after - state.pressure)
            if give_up is not None:
                if now >= give_up:
                    return
                remaining = min(remaining, give_up - now)
            if state.room is None or state.room.done():
                state.room = loop.create_future()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(state.room), remaining)
            finally:
                state.pressure_at = time.monotonic()
                state.pressure += state.pressure_at - now

    # -- receiving --------------------------------------------------------------------

    def wants_more(self, channel: str) -> bool:
        """True if receivers on ``channel`` wait for more messages than are queued."""
        state = self.channels.get(channel)
        return state is not None and len(state.waiters) > len(state.queue)

    def surplus(self, channel: str) -> list[QueuedMessage]:
        """Take back messages queued on ``channel`` that no receiver waits for."""
        state = self.channels.get(channel)
        if state is None or state.waiters or not state.queue:
            return []
        taken = list(state.queue)
        state.queue.clear()
        self.queued -= len(taken)
        self._forget_if_idle(state)
        return taken

    async def receive(
        self,
        channel: str,
        on_wait: Callable[[], None] | None = None,
        on_orphan: Callable[[str], None] | None = None,
    ) -> Message:
        """Wait for the next message on local ``channel`` (FIFO, cancellation-safe).

        ``on_wait`` runs before each wait; ``on_orphan(channel)`` runs when a cancelled
        receiver leaves messages behind that no other receiver waits for.
        """
        while True:
            state = self._state(channel)
            now = self._clock()
            while state.queue:
                queued = state.queue.popleft()
                self.queued -= 1
                if queued.direct:
                    self._on_direct_done(channel)
                state.last_pop = time.monotonic()
                if state.room is not None and not state.room.done():
                    state.room.set_result(None)
                if state.congested and len(state.queue) <= state.capacity // 2:
                    state.congested = False
                if queued.deadline <= now:
                    self._expired(state, queued)
                    continue
                try:
                    message = queued.open(self._deserialize)
                except Exception:
                    logger.exception("Dropping a message on %r that cannot be decoded", channel)
                    continue
                self._counters["received"] += 1
                self._forget_if_idle(state)
                return message
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            state.waiters.append(waiter)
            if on_wait is not None:
                on_wait()
            try:
                await waiter
            except BaseException:
                with contextlib.suppress(ValueError):
                    state.waiters.remove(waiter)
                if state.queue and not state.waiters:
                    # Messages nobody here waits for any more (plain channels hand
                    # them back to Redis for other processes).
                    if on_orphan is not None:
                        on_orphan(channel)
                elif waiter.done() and not waiter.cancelled() and state.queue:
                    # Woken for a message we will not take: pass the wake-up on.
                    _wake_first(state.waiters)
                self._forget_if_idle(state)
                raise

    def fail_waiters(self, exc: BaseException) -> None:
        """Make every waiting receive() raise ``exc``."""
        for state in list(self.channels.values()):
            while state.waiters:
                waiter = state.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
            self._forget_if_idle(state)

    def prune_members(self) -> list[str]:
        """Remove local members that joined more than ``group_expiry`` ago.

        Members of groups that receive no messages are otherwise never checked, so a
        consumer that vanished without ``group_discard`` would stay in memory for the
        life of the process. Returns the groups left without local members.
        """
        cutoff = self._clock() - self.group_expiry
        emptied = []
        for group, members in list(self.groups.items()):
            for channel, joined in list(members.items()):
                if joined < cutoff:
                    self._counters["group_members_expired"] += 1
                    if self.remove_member(group, channel):
                        emptied.append(group)
        return emptied

    # -- expiry -----------------------------------------------------------------------

    def sweep(self) -> None:
        """Drop expired messages from every local queue (called about once a second)."""
        now = self._clock()
        for state in list(self.channels.values()):
            queue = state.queue
            if not queue or queue[0].deadline > now:
                continue
            while queue and queue[0].deadline <= now:
                queued = queue.popleft()
                self.queued -= 1
                if queued.direct:
                    self._on_direct_done(state.name)
                self._expired(state, queued)
            self._forget_if_idle(state)

    def _expired(self, state: _LocalChannel, queued: QueuedMessage) -> None:
        state.expired += 1
        self._counters["expired"] += 1
        self._report(state.name, queued, "expired")
        # Channels' rule: a channel that let a message expire is presumed dead and
        # leaves its groups; this bounds memberships of consumers that never discarded.
        for group in list(self.memberships.get(state.name, ())):
            self.remove_member(group, state.name)

    # -- groups -----------------------------------------------------------------------

    def add_member(self, group: str, channel: str) -> None:
        """Add (or refresh) a local member."""
        self.groups.setdefault(group, {})[channel] = self._clock()
        self.memberships.setdefault(channel, set()).add(group)

    def remove_member(self, group: str, channel: str) -> bool:
        """Remove a local member; True if ``group`` has no local members left."""
        members = self.groups.get(group)
        emptied = False
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]
                self._group_dropped.pop(group, None)
                emptied = True
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
        state = self.channels.get(channel)
        if state is not None:
            self._forget_if_idle(state)
        return emptied

    def newest_join(self, group: str) -> float | None:
        """Join time of the most recent local member of ``group``."""
        members = self.groups.get(group)
        return max(members.values()) if members else None

    # -- housekeeping -----------------------------------------------------------------

    def clear(self) -> list[str]:
        """Drop every queued message and local membership (flush); waiters keep waiting.

        Returns the channels whose direct messages were dropped, once per message.
        """
        direct: list[str] = []
        for state in list(self.channels.values()):
            direct.extend(state.name for queued in state.queue if queued.direct)
            state.queue.clear()
            state.dropped = state.expired = 0
            if not state.waiters:
                del self.channels[state.name]
        self.queued = 0
        self.groups.clear()
        self.memberships.clear()
        self._group_dropped.clear()
        return direct

    def channel_stats(self, channel: str) -> ChannelStats:
        """Counters of local ``channel`` (zeros if the hub holds no state for it)."""
        state = self.channels.get(channel)
        if state is None:
            return ChannelStats(channel, 0, self._get_capacity(channel), 0, 0, False)
        return ChannelStats(
            channel, len(state.queue), state.capacity, state.dropped, state.expired, state.congested
        )

    def group_stats(self, group: str) -> GroupStats:
        """Local members of ``group`` and the messages dropped for them."""
        return GroupStats(group, len(self.groups.get(group, ())), self._group_dropped.get(group, 0))

    def record_group_drop(self, group: str) -> None:
        """Count a drop for ``group`` (used for drops detected in Redis)."""
        self._group_dropped[group] = self._group_dropped.get(group, 0) + 1

    def _state(self, channel: str) -> _LocalChannel:
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = _LocalChannel(channel, self._get_capacity(channel))
        return state

    def _forget_if_idle(self, state: _LocalChannel) -> None:
        if (
            not state.queue
            and not state.waiters
            and state.name not in self.memberships
            and self.channels.get(state.name) is state
        ):
            del self.channels[state.name]

    def _drop(self, state: _LocalChannel, queued: QueuedMessage, reason: DropReason) -> None:
        state.dropped += 1
        self._counters["dropped_full"] += 1
        if queued.group is not None and queued.group in self.groups:
            self.record_group_drop(queued.group)
        self._report(state.name, queued, reason)

    def _report(self, channel: str, queued: QueuedMessage, reason: DropReason) -> None:
        message: Message = {}
        if self._reporter.on_drop is not None:
            # Decoded only when a callback will look at it.
            with contextlib.suppress(Exception):
                message = self._deserialize(queued.payload)
        self._reporter.report(DropEvent(reason, channel, queued.group, message))


def _wake_first(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
