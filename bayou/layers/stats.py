"""Counters and drop reporting shared by channel layers.

Channels drops messages silently (``group_send`` over capacity, unread messages past
``expiry``). bayou layers count every drop, log it on the ``bayou.layers`` logger at a
rate-limited WARNING and hand it to an optional ``on_drop`` callback, so an application
can see, measure and react to lost messages. See ``docs/topics/delivery.md``.
"""

from __future__ import annotations

import logging
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

__all__ = [
    "LAYER_COUNTERS",
    "ChannelStats",
    "DropEvent",
    "DropReason",
    "DropReporter",
    "GroupStats",
    "LayerStats",
    "OnDrop",
]

logger = logging.getLogger("bayou.layers")

#: ``"full"``: a ``group_send`` found the member's queue at capacity (and, for layers with
#: back-pressure, it stayed full for the allowed wait). ``"expired"``: the message was not
#: received within ``expiry`` seconds.
DropReason = Literal["full", "expired"]


@dataclass(frozen=True, slots=True)
class DropEvent:
    """One message a layer discarded instead of delivering."""

    reason: DropReason
    channel: str
    #: The group the message was sent to, or ``None`` for a direct ``send``.
    group: str | None
    #: A copy of the discarded message (safe to keep or mutate).
    message: dict[str, Any]


OnDrop = Callable[[DropEvent], object]


@dataclass(frozen=True, slots=True)
class LayerStats:
    """A snapshot of a layer's counters.

    Counters (``sent`` ... ``group_members_expired``) only grow for the life of the layer
    object, ``flush()`` included, so they can be exported as monotonic metrics. The gauges
    (``channels``, ``groups``, ``queued``) describe the current state.
    """

    #: Messages accepted by ``send()``.
    sent: int = 0
    #: Messages returned by ``receive()``.
    received: int = 0
    #: ``group_send()`` calls.
    group_sends: int = 0
    #: Messages queued for group members (one per member per ``group_send``).
    group_deliveries: int = 0
    #: ``send()`` calls refused with ``ChannelFull``.
    channel_full: int = 0
    #: Group messages dropped because the member's queue was full.
    dropped_full: int = 0
    #: Messages dropped because nobody received them within ``expiry``.
    expired: int = 0
    #: ``group_send()`` calls that waited for room (back-pressure) before delivering.
    waits: int = 0
    #: Group memberships removed because they were older than ``group_expiry``.
    group_members_expired: int = 0
    #: Channels the layer currently holds state for.
    channels: int = 0
    #: Groups with at least one member.
    groups: int = 0
    #: Messages currently queued and not yet received.
    queued: int = 0

    @property
    def dropped(self) -> int:
        """Every message the layer discarded (``dropped_full + expired``)."""
        return self.dropped_full + self.expired


#: The counter fields of :class:`LayerStats`, in order: the keys of a layer's counter
#: dict (``LayerStats(**counters, channels=..., groups=..., queued=...)``).
LAYER_COUNTERS = (
    "sent",
    "received",
    "group_sends",
    "group_deliveries",
    "channel_full",
    "dropped_full",
    "expired",
    "waits",
    "group_members_expired",
)


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """A snapshot of one channel, for the consumer that owns it."""

    channel: str
    #: Messages waiting to be received.
    queued: int
    #: The channel's capacity (``get_capacity(channel)``).
    capacity: int
    #: Group messages dropped for this channel because its queue was full.
    dropped: int
    #: Messages on this channel that expired unread.
    expired: int
    #: True while group sends do not wait for this channel (it stalled while full).
    congested: bool


@dataclass(frozen=True, slots=True)
class GroupStats:
    """A snapshot of one group."""

    group: str
    #: Current members (including ones past ``group_expiry`` not yet cleaned up).
    members: int
    #: Messages sent to this group that some member did not get (one per member).
    dropped: int


class DropReporter:
    """Logs drops at a bounded rate and forwards each one to ``on_drop``.

    ``on_drop`` may be given as a callable or as its dotted path (resolved here, once).

    The first drop is logged at once; later drops within ``interval`` seconds are counted
    and summarised by the first drop after the interval ends (no timer runs in the
    background). ``on_drop`` is called for every drop; an exception it raises is logged and
    swallowed so that a faulty callback cannot break ``group_send``.
    """

    def __init__(
        self,
        on_drop: OnDrop | str | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        if isinstance(on_drop, str):
            # A dotted path, so the callback can be named in settings.CHANNEL_LAYERS.
            on_drop = cast(OnDrop, pkgutil.resolve_name(on_drop))
        self.on_drop: OnDrop | None = on_drop
        self.interval = interval
        self._clock = clock
        self._log = log
        self._next_log_at: float | None = None
        self._suppressed: dict[str, int] = {}

    def report(self, event: DropEvent) -> None:
        """Record ``event``: maybe log, then call ``on_drop``."""
        now = self._clock()
        if self._next_log_at is None or now >= self._next_log_at:
            self._emit(event)
            self._next_log_at = now + self.interval
        else:
            self._suppressed[event.reason] = self._suppressed.get(event.reason, 0) + 1
        if self.on_drop is not None:
            try:
                self.on_drop(event)
            except Exception:
                self._log.exception("on_drop callback raised for a message on %r", event.channel)

    def _emit(self, event: DropEvent) -> None:
        suppressed = self._suppressed
        self._suppressed = {}
        where = f"channel {event.channel!r}"
        if event.group is not None:
            where += f" (group {event.group!r})"
        if suppressed:
            total = sum(suppressed.values())
            detail = ", ".join(f"{count} {reason}" for reason, count in sorted(suppressed.items()))
            self._log.warning(
                "Channel layer dropped a message for %s: %s; %d more dropped since the last "
                "report (%s). Counters: layer.stats()",
                where,
                _describe(event.reason),
                total,
                detail,
            )
        else:
            self._log.warning(
                "Channel layer dropped a message for %s: %s. Further drops are reported at "
                "most every %g s; counters: layer.stats()",
                where,
                _describe(event.reason),
                self.interval,
            )


def _describe(reason: DropReason) -> str:
    if reason == "full":
        return "the channel is at capacity"
    return "it expired unread"
