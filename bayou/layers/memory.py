"""A channel layer inside one process (``InMemoryChannelLayer``).

Compatible with ``channels.layers.InMemoryChannelLayer`` (same constructor arguments,
extensions, errors, expiry and group semantics) with these differences, each documented
in ``docs/reference/layers.md`` and ``docs/topics/delivery.md``:

* every operation costs O(1) (``group_send``: O(members)) however many channels and
  groups exist: a deque and a list of waiting receivers per channel, expiry checked on
  the head of a queue, and a heap of channel deadlines swept a few entries per call;
* ``group_send`` applies back-pressure: when a member's queue is full it waits for room
  as long as the member keeps receiving, and drops only for a member that received
  nothing for ``group_send_timeout`` seconds, so a burst of sends from the same process
  is delivered instead of being dropped;
* every drop is counted (:meth:`InMemoryChannelLayer.stats`,
  :meth:`~InMemoryChannelLayer.channel_stats`, :meth:`~InMemoryChannelLayer.group_stats`),
  logged on ``bayou.layers`` at a rate-limited WARNING and passed to ``on_drop``;
* messages are copied once on send (dicts and lists recursively, other values are
  immutable primitives and shared); a group message is stored once and copied per
  member when received, so no receiver sees another's mutations;
* ``channel_capacity`` works; ``new_channel()`` names have no double dot; ``flush()``
  keeps pending ``receive()`` calls working.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bayou.exceptions import ChannelFull
from bayou.layers.base import BaseChannelLayer, CapacityPatterns, CompiledCapacities
from bayou.layers.copying import ATOMIC_TYPES, copy_value
from bayou.layers.stats import (
    LAYER_COUNTERS,
    ChannelStats,
    DropEvent,
    DropReason,
    DropReporter,
    GroupStats,
    LayerStats,
    OnDrop,
)

__all__ = ["InMemoryChannelLayer"]

Message = dict[str, Any]

# Expired channels the sweep handles per call; keeps the cost of one call bounded.
_SWEEP_BATCH = 32
# Validated names remembered per layer (the set is cleared when it reaches this size).
_NAME_CACHE_SIZE = 8192


def _isolate(message: Message) -> tuple[Message, bool]:
    """A private copy of ``message`` and whether it holds anything but atomic values."""
    nested = False
    result: Message = {}
    for key, value in message.items():
        if type(value) in ATOMIC_TYPES:
            result[key] = value
        else:
            nested = True
            result[key] = copy_value(value)
    return result, nested


class _Envelope:
    """A queued message. One envelope is shared by all members of a ``group_send``."""

    __slots__ = ("deadline", "group", "message", "nested", "shared")

    def __init__(
        self, message: Message, deadline: float, nested: bool, shared: bool, group: str | None
    ) -> None:
        self.message = message
        self.deadline = deadline
        self.nested = nested
        self.shared = shared
        self.group = group

    def open(self) -> Message:
        """The message for one receiver (a copy if other receivers share it)."""
        if not self.shared:
            return self.message
        if self.nested:
            result: Message = copy_value(self.message)
            return result
        return self.message.copy()


class _Channel:
    """Per-channel state: the queue, waiting receivers and waiting group senders."""

    __slots__ = (
        "capacity",
        "congested",
        "dropped",
        "expired",
        "last_pop",
        "lingering",
        "name",
        "putters",
        "queue",
        "sweep_token",
        "waiters",
    )

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.queue: deque[_Envelope] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.putters: deque[asyncio.Future[None]] = deque()
        self.dropped = 0
        self.expired = 0
        self.congested = False
        # time.monotonic() of the last receive(); tells a slow consumer from a stalled one.
        self.last_pop = 0.0
        # True while the sweep keeps an idle channel only so its counters stay readable.
        self.lingering = False
        # Token of this channel's live entry in the sweep heap; 0 = none.
        self.sweep_token = 0


def _wake_first(waiters: deque[asyncio.Future[None]]) -> None:
    """Resolve the first still-pending future in ``waiters`` (removing it)."""
    while waiters:
        future = waiters.popleft()
        if not future.done():
            _resolve(future)
            return


def _resolve(future: asyncio.Future[None]) -> None:
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        future.set_result(None)
    else:
        # The waiter lives on another event loop (e.g. a receive() under async_to_sync in
        # another thread): wake it on its own loop.
        loop.call_soon_threadsafe(_resolve_if_pending, future)


def _resolve_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class InMemoryChannelLayer(BaseChannelLayer):
    """A process-local channel layer with groups, flush, drop counters and back-pressure.

    For tests, development and single-process deployments: messages never leave the
    process. Constructor arguments after ``channel_capacity`` are bayou additions:

    ``group_send_timeout``
        How long (seconds, default 1.0) a ``group_send`` waits for a member whose queue
        is full while that member receives nothing. A member that keeps receiving is
        waited for; one that stalls this long gets the message dropped and is marked
        congested: later group sends do not wait for it (they deliver if it has room
        and drop otherwise) until its queue is half empty again. ``0`` never waits and
        drops at once, like Channels.
    ``on_drop``
        Called with a :class:`~bayou.layers.stats.DropEvent` for every dropped message
        (a callable, or its dotted path as a string).
    ``drop_log_interval``
        Minimum seconds between two WARNING lines about drops on ``bayou.layers``.
    """

    extensions = ["groups", "flush"]

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: CapacityPatterns | CompiledCapacities | None = None,
        *,
        group_send_timeout: float = 1.0,
        on_drop: OnDrop | str | None = None,
        drop_log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.group_expiry = group_expiry
        self.group_send_timeout = group_send_timeout
        self._clock = clock
        self._reporter = DropReporter(on_drop, drop_log_interval, clock)
        #: channel name -> state (private; the name matches Channels' attribute).
        self.channels: dict[str, _Channel] = {}
        #: group -> {channel: join time} (private; same shape as Channels').
        self.groups: dict[str, dict[str, float]] = {}
        self._memberships: dict[str, set[str]] = {}
        self._group_dropped: dict[str, int] = {}
        self._sweep: list[tuple[float, int, str]] = []
        self._tokens = itertools.count(1)
        self._generation = 0
        self._counters: dict[str, int] = dict.fromkeys(LAYER_COUNTERS, 0)
        self._queued = 0
        self._valid_channels: set[str] = set()
        self._valid_groups: set[str] = set()

    @property
    def on_drop(self) -> OnDrop | None:
        """The drop callback; may be replaced at any time."""
        return self._reporter.on_drop

    @on_drop.setter
    def on_drop(self, callback: OnDrop | None) -> None:
        self._reporter.on_drop = callback

    # -- channels ---------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue a copy of ``message`` on ``channel``.

        Raises ``ChannelFull`` if the channel holds ``get_capacity(channel)`` unread
        messages, ``TypeError`` for a bad name or a non-dict message and ``ValueError``
        if the message uses the reserved ``__asgi_channel__`` key. Never waits.
        """
        self._check_channel(channel)
        copied, nested = _isolate(self._require_message(message))
        now = self._clock()
        self._run_sweep(now)
        state = self._state(channel)
        self._expire_head(state, now)
        if len(state.queue) >= state.capacity:
            self._counters["channel_full"] += 1
            self._forget_if_idle(state)
            raise ChannelFull(channel)
        self._push(state, _Envelope(copied, now + self.expiry, nested, False, None))
        self._counters["sent"] += 1

    async def receive(self, channel: str) -> Message:
        """Wait for the next message on ``channel`` and return it (FIFO).

        Any number of tasks may receive on the same channel; each message goes to one of
        them. Cancelling a waiting ``receive()`` loses no message.
        """
        self._check_channel(channel)
        while True:
            now = self._clock()
            self._run_sweep(now)
            state = self._state(channel)
            self._expire_head(state, now)
            if state.queue:
                envelope = state.queue.popleft()
                self._queued -= 1
                self._counters["received"] += 1
                state.last_pop = time.monotonic()
                self._after_pop(state)
                return envelope.open()
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            state.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                with contextlib.suppress(ValueError):
                    state.waiters.remove(waiter)
                # We were woken for a message but will not take it: pass the wake-up on.
                if waiter.done() and not waiter.cancelled() and state.queue:
                    _wake_first(state.waiters)
                self._forget_if_idle(state)
                raise

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-specific channel name: ``<prefix>inmemory!<random>``.

        A ``.`` is inserted after ``prefix`` unless it already ends with one (Channels
        produces ``specific..inmemory!...``). The random part comes from :mod:`secrets`
        and is checked against the channels this layer knows.
        """
        separator = "" if prefix.endswith(".") else "."
        while True:
            name = f"{prefix}{separator}inmemory!{secrets.token_urlsafe(9)}"
            if name not in self.channels and name not in self._memberships:
                break
        self.require_valid_channel_name(name)
        return name

    # -- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: refreshes its join time)."""
        self._check_group(group)
        self._check_channel(channel)
        now = self._clock()
        self._run_sweep(now)
        state = self.channels.get(channel)
        if state is not None:
            # Settle the channel's expired messages first: they end its memberships,
            # and must not end the one being added now.
            self._expire_head(state, now)
        self.groups.setdefault(group, {})[channel] = now
        self._memberships.setdefault(channel, set()).add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; nothing happens if it is not a member."""
        self._check_group(group)
        self._check_channel(channel)
        self._run_sweep(self._clock())
        self._remove_member(group, channel)
        state = self.channels.get(channel)
        if state is not None:
            self._forget_if_idle(state)

    async def group_send(self, group: str, message: Message) -> None:
        """Send ``message`` to every current member of ``group``.

        Never raises ``ChannelFull``. Members with room get the message at once. For a
        member whose queue is full the call waits until it has room, unless the member
        received nothing for ``group_send_timeout`` seconds (or is congested): then the
        message is dropped for that member and the drop is counted, logged and reported
        to ``on_drop``. Members older than ``group_expiry`` are removed first.
        """
        self._check_group(group)
        copied, nested = _isolate(self._require_message(message))
        now = self._clock()
        self._run_sweep(now)
        self._counters["group_sends"] += 1
        members = self.groups.get(group)
        if not members:
            return
        envelope = _Envelope(copied, now + self.expiry, nested, True, group)
        oldest = now - self.group_expiry
        waits = self.group_send_timeout > 0
        stale: list[str] = []
        blocked: list[_Channel] = []
        states = self.channels
        delivered = 0
        # A snapshot: expiring a member's messages removes it from its groups.
        for channel, joined in list(members.items()):
            if joined < oldest:
                stale.append(channel)
                continue
            state = states.get(channel) or self._state(channel)
            queue = state.queue
            if queue and queue[0].deadline <= now:
                self._expire_head(state, now)
                if channel not in members:
                    self._forget_if_idle(state)
                    continue
            has_room = len(queue) < state.capacity
            if has_room and (not state.putters or not waits):
                # The common case, inlined from _push: this loop runs once per member.
                queue.append(envelope)
                delivered += 1
                if state.sweep_token == 0:
                    self._schedule_sweep(state)
                if state.waiters:
                    _wake_first(state.waiters)
            elif not has_room and (state.congested or not waits):
                self._drop(state, envelope, "full")
            else:
                # Full, or earlier senders are waiting for this member: queue up behind.
                blocked.append(state)
        self._queued += delivered
        self._counters["group_deliveries"] += delivered
        for channel in stale:
            self._remove_member(group, channel)
            self._counters["group_members_expired"] += 1
            known = self.channels.get(channel)
            if known is not None:
                self._forget_if_idle(known)
        if blocked:
            self._counters["waits"] += 1
            await self._wait_for_room(blocked, envelope)

    async def _wait_for_room(self, blocked: list[_Channel], envelope: _Envelope) -> None:
        """Deliver ``envelope`` to full members as they make room.

        A member that receives nothing for ``group_send_timeout`` seconds while we wait
        (counted from when we start waiting for it or its last receive, whichever is
        later) is considered stalled: the message is dropped for it and it is marked
        congested. A member that keeps receiving is waited for, however long that takes.
        """
        loop = asyncio.get_running_loop()
        timeout = self.group_send_timeout
        generation = self._generation
        pending = deque(blocked)
        waiting_since: float | None = None
        try:
            while pending:
                if self._generation != generation:
                    # flush() ran: the message is gone with everything else.
                    pending.clear()
                    return
                # Look the state up again: while we were woken but not yet running, the
                # channel may have gone idle and been forgotten (then it has room).
                state = pending[0] = self._state(pending[0].name)
                self._expire_head(state, self._clock())
                if len(state.queue) < state.capacity:
                    pending.popleft()
                    waiting_since = None
                    self._push(state, envelope)
                    self._counters["group_deliveries"] += 1
                    # Room may remain for the next waiting sender.
                    if state.putters and len(state.queue) < state.capacity:
                        _wake_first(state.putters)
                    continue
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = now
                stalled_at = max(waiting_since, state.last_pop) + timeout
                if state.congested or now >= stalled_at:
                    pending.popleft()
                    waiting_since = None
                    state.congested = True
                    self._drop(state, envelope, "full")
                    continue
                putter: asyncio.Future[None] = loop.create_future()
                state.putters.append(putter)
                timer = loop.call_later(stalled_at - now, _resolve_if_pending, putter)
                try:
                    await putter
                finally:
                    timer.cancel()
                    with contextlib.suppress(ValueError):
                        state.putters.remove(putter)
        except BaseException:
            # Cancelled while waiting: the remaining members will not get the message.
            for state in pending:
                if self._generation == generation:
                    self._drop(state, envelope, "full")
                if state.putters and len(state.queue) < state.capacity:
                    _wake_first(state.putters)
            raise

    # -- flush / close ----------------------------------------------------------------

    async def flush(self) -> None:
        """Drop every queued message and group membership.

        Pending ``receive()`` calls keep waiting and get messages sent after the flush;
        ``group_send()`` calls waiting for room give up silently. Per-channel and
        per-group counters restart; the layer-wide counters in :meth:`stats` keep going.
        """
        self._generation += 1
        for state in list(self.channels.values()):
            self._queued -= len(state.queue)
            state.queue.clear()
            state.dropped = state.expired = 0
            state.congested = False
            state.sweep_token = 0
            while state.putters:
                _wake_first(state.putters)
            if not state.waiters:
                del self.channels[state.name]
        self.groups.clear()
        self._memberships.clear()
        self._group_dropped.clear()
        self._sweep.clear()

    async def close(self) -> None:
        """Nothing to release (kept for API compatibility)."""

    # -- visibility -------------------------------------------------------------------

    def stats(self) -> LayerStats:
        """Layer-wide counters and gauges (see :class:`~bayou.layers.stats.LayerStats`)."""
        return LayerStats(
            **self._counters,
            channels=len(self.channels),
            groups=len(self.groups),
            queued=self._queued,
        )

    def channel_stats(self, channel: str) -> ChannelStats:
        """Counters for ``channel``.

        They live as long as the layer holds state for the channel (while it has queued
        messages, a waiting receiver or group memberships, and up to ``expiry`` seconds
        after); a channel without state reports zeros.
        """
        state = self.channels.get(channel)
        if state is None:
            return ChannelStats(channel, 0, self.get_capacity(channel), 0, 0, False)
        return ChannelStats(
            channel,
            len(state.queue),
            state.capacity,
            state.dropped,
            state.expired,
            state.congested,
        )

    def group_stats(self, group: str) -> GroupStats:
        """Members of ``group`` and the messages dropped for them (zero if no group)."""
        return GroupStats(group, len(self.groups.get(group, ())), self._group_dropped.get(group, 0))

    # -- internals --------------------------------------------------------------------

    def _check_channel(self, name: str) -> None:
        # Validated names are remembered (a bounded set) because the regex is a
        # noticeable part of a send/receive round trip.
        if name not in self._valid_channels:
            self.require_valid_channel_name(name)
            if len(self._valid_channels) >= _NAME_CACHE_SIZE:
                self._valid_channels.clear()
            self._valid_channels.add(name)

    def _check_group(self, name: str) -> None:
        if name not in self._valid_groups:
            self.require_valid_group_name(name)
            if len(self._valid_groups) >= _NAME_CACHE_SIZE:
                self._valid_groups.clear()
            self._valid_groups.add(name)

    @staticmethod
    def _require_message(message: object) -> Message:
        if not isinstance(message, dict):
            raise TypeError("message must be a dict")
        if "__asgi_channel__" in message:
            raise ValueError("the __asgi_channel__ key is reserved for channel layers")
        return message

    def _state(self, channel: str) -> _Channel:
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = _Channel(channel, self.get_capacity(channel))
        return state

    def _push(self, state: _Channel, envelope: _Envelope) -> None:
        state.queue.append(envelope)
        self._queued += 1
        if state.sweep_token == 0:
            self._schedule_sweep(state)
        if state.waiters:
            _wake_first(state.waiters)

    def _schedule_sweep(self, state: _Channel) -> None:
        token = next(self._tokens)
        state.sweep_token = token
        heapq.heappush(self._sweep, (state.queue[0].deadline, token, state.name))

    def _after_pop(self, state: _Channel) -> None:
        if state.congested and len(state.queue) <= state.capacity // 2:
            state.congested = False
        if state.putters and len(state.queue) < state.capacity:
            _wake_first(state.putters)

    def _expire_head(self, state: _Channel, now: float) -> None:
        """Drop expired messages at the head of ``state``'s queue.

        Messages are queued in deadline order (a message that waited for room may be a
        little out of order; it is then expired when it reaches the head).
        """
        queue = state.queue
        if not queue or queue[0].deadline > now:
            return
        while queue and queue[0].deadline <= now:
            envelope = queue.popleft()
            self._queued -= 1
            state.expired += 1
            self._counters["expired"] += 1
            self._report(state, envelope, "expired")
        # Channels' rule: a channel with an expired message is presumed dead and leaves
        # all its groups, which bounds the life of stale memberships.
        for group in list(self._memberships.get(state.name, ())):
            self._remove_member(group, state.name)
        if state.putters and len(queue) < state.capacity:
            _wake_first(state.putters)

    def _run_sweep(self, now: float) -> None:
        """Expire messages of channels nobody touches, a bounded number per call."""
        heap = self._sweep
        for _ in range(_SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                return
            _, token, name = heapq.heappop(heap)
            state = self.channels.get(name)
            if state is None or state.sweep_token != token:
                continue
            state.sweep_token = 0
            self._expire_head(state, now)
            if state.queue:
                state.lingering = False
                state.sweep_token = token = next(self._tokens)
                heapq.heappush(heap, (state.queue[0].deadline, token, name))
            elif (state.dropped or state.expired) and not state.lingering:
                # Keep the counters readable (channel_stats) for one more expiry period.
                state.lingering = True
                state.sweep_token = token = next(self._tokens)
                heapq.heappush(heap, (now + self.expiry, token, name))
            else:
                self._forget_if_idle(state)

    def _forget_if_idle(self, state: _Channel) -> None:
        if (
            not state.queue
            and not state.waiters
            and not state.putters
            and state.name not in self._memberships
            and self.channels.get(state.name) is state
        ):
            del self.channels[state.name]

    def _remove_member(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]
                self._group_dropped.pop(group, None)
        groups = self._memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._memberships[channel]

    def _drop(self, state: _Channel, envelope: _Envelope, reason: DropReason) -> None:
        state.dropped += 1
        self._counters["dropped_full"] += 1
        if envelope.group is not None and envelope.group in self.groups:
            self._group_dropped[envelope.group] = self._group_dropped.get(envelope.group, 0) + 1
        self._report(state, envelope, reason)

    def _report(self, state: _Channel, envelope: _Envelope, reason: DropReason) -> None:
        # Copy only when a callback will see the message; the log line does not show it.
        message = envelope.message
        if self._reporter.on_drop is not None:
            message = copy_value(message)
        self._reporter.report(DropEvent(reason, state.name, envelope.group, message))
