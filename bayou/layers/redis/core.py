"""``RedisChannelLayer``: the channel layer for several processes sharing Redis.

Configured like ``channels_redis.core.RedisChannelLayer`` 4.x. How it works (details and
the exact Redis commands in ``docs/topics/redis-design.md``):

* every layer instance (normally one per process) has an id ``pid`` and one Redis list,
  its *inbox*. Its process-specific channels (``new_channel()``) are
  ``<prefix>.<pid>!<random>``; messages for them go to the inbox;
* one receive loop per instance (per shard it reads from) pops the inbox with a blocking
  pop shorter than the socket timeout and hands messages to local queues, where
  ``receive()`` waits; plain channels (no ``!``) are Redis lists read by the same loop;
* a group is a sorted set ``member -> join time`` whose members are processes
  (``@<pid>``) or channel names; the instance keeps its own members in memory. A
  ``group_send`` serializes once and runs one Lua script that pushes one entry per member
  *process* (plus one per plain member channel), so its cost does not grow with the
  number of local members; the receiving process fans out to its members;
* drops (capacity, expiry) are counted (:meth:`RedisChannelLayer.stats`), logged on
  ``bayou.layers`` at a rate-limited WARNING and passed to ``on_drop``;
* Redis restarts and dropped connections: the receive loop reconnects with jittered
  exponential backoff, re-registers the instance's groups, and fails waiting receivers
  with :class:`RedisUnavailable` only if Redis stays unreachable ``outage_timeout``
  seconds; other operations retry briefly, then raise :class:`RedisUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bayou.exceptions import ChannelFull
from bayou.layers.base import BaseChannelLayer, CapacityPatterns, CompiledCapacities
from bayou.layers.redis import entries, scripts
from bayou.layers.redis.connections import AnyRedis, LoopClients, aclose_client
from bayou.layers.redis.hashing import consistent_hash, shard_index
from bayou.layers.redis.hosts import HostSpec, create_cluster, create_pool, decode_hosts
from bayou.layers.redis.local import COUNTERS, LocalHub, QueuedMessage
from bayou.layers.redis.serializers import registry
from bayou.layers.stats import (
    ChannelStats,
    DropEvent,
    DropReporter,
    GroupStats,
    LayerStats,
    OnDrop,
)

__all__ = ["ChannelFull", "RedisChannelLayer", "RedisUnavailable"]

logger = logging.getLogger("bayou.layers.redis")

Message = dict[str, Any]
T = TypeVar("T")

#: Errors that mean "Redis is not reachable right now".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
# Inbox entries popped per LPOP while draining, and batches per loop iteration.
_DRAIN_BATCH = 256
_DRAIN_ROUNDS = 8
# Seconds between two rounds of the receive loop's periodic work (expiry sweep, depth
# decrements, liveness heartbeat), also while it waits for a slow consumer.
_CHORE_INTERVAL = 1.0
# Channels whose Redis-side drops are remembered for channel_stats().
_DROP_TABLE_SIZE = 4096
# Names remembered as valid for receive() (the table is cleared when it reaches this).
_NAME_CACHE_SIZE = 8192


class RedisUnavailable(ConnectionError):
    """Redis could not be reached (after retries), or the layer was closed meanwhile."""


class _Script:
    """A Lua script called by SHA, loaded again if the server forgot it (restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    async def __call__(self, client: AnyRedis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_SEND_PLAIN = _Script(scripts.SEND_PLAIN)
_SEND_LOCAL = _Script(scripts.SEND_LOCAL)
_DECREMENT = _Script(scripts.DECREMENT)
_GROUP_ADD = _Script(scripts.GROUP_ADD)
_GROUP_DISCARD = _Script(scripts.GROUP_DISCARD)
_GROUP_SEND = _Script(scripts.GROUP_SEND)
_GROUP_MEMBERS = _Script(scripts.GROUP_MEMBERS)
_GROUP_PUSH = _Script(scripts.GROUP_PUSH)


@contextlib.contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise RedisUnavailable(f"Redis is unavailable ({what}): {exc}") from exc


def _bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisChannelLayer(BaseChannelLayer):
    """A channel layer on one or more Redis servers (``groups`` and ``flush`` extensions).

    Arguments as in channels_redis: ``hosts``, ``prefix``, ``expiry``, ``group_expiry``,
    ``capacity``, ``channel_capacity``, ``symmetric_encryption_keys``,
    ``random_prefix_length``, ``serializer_format``. bayou additions (keyword only):

    ``on_drop`` / ``drop_log_interval``
        As for the in-memory layer: a callback per dropped message (or its dotted path),
        and the minimum seconds between two WARNING lines about drops.
    ``block_timeout``
        Seconds one blocking pop of the receive loop waits (default 1). Always kept
        below the receive connection's socket timeout.
    ``process_ttl``
        Seconds after which a process that stopped refreshing its liveness key (crashed)
        is removed from groups by the next ``group_send`` (default 30).
    ``outage_timeout``
        Seconds of Redis being unreachable after which waiting ``receive()`` calls raise
        :class:`RedisUnavailable` (default 30; ``None``: wait forever).
    ``group_send_timeout``
        Back-pressure in the receiving process (default 1 s): when a group message
        would overflow a local member's queue, the receive loop waits for room while
        that member keeps receiving (the rest of the inbox waits in Redis, in order);
        a member that receives nothing for this long, or that has kept the loop waiting
        about ten times this long in a row (it receives, but too slowly), is marked
        congested and its group messages are dropped (counted) until it catches up.
        ``0``: drop at once.
    ``on_disconnect`` / ``on_reconnect``
        Message types (e.g. ``"redis.disconnect"``) queued to every local channel that is
        in a group or waiting in ``receive()`` when the receive loop loses / regains
        Redis, so consumers can resynchronise state they may have missed.
    """

    extensions = ["groups", "flush"]

    def __init__(
        self,
        hosts: object = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: CapacityPatterns | CompiledCapacities | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        random_prefix_length: int = 0,
        serializer_format: str = "msgpack",
        *,
        on_drop: OnDrop | str | None = None,
        drop_log_interval: float = 10.0,
        block_timeout: float = 1.0,
        process_ttl: float = 30.0,
        outage_timeout: float | None = 30.0,
        group_send_timeout: float = 1.0,
        on_disconnect: str | None = None,
        on_reconnect: str | None = None,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string")
        # 0 would mean "block forever" to BLPOP and a busy loop to the chores.
        for option, value in (("block_timeout", block_timeout), ("process_ttl", process_ttl)):
            if not value > 0:
                raise ValueError(f"{option} must be a positive number of seconds, not {value!r}")
        if group_send_timeout < 0:
            raise ValueError(f"group_send_timeout must be >= 0, not {group_send_timeout!r}")
        self.hosts: list[HostSpec] = decode_hosts(hosts)
        #: Redis Cluster mode: the shards are logical (hash tags), not servers.
        self._cluster = self.hosts[0].is_cluster
        if self._cluster:
            if "{" in prefix or "}" in prefix:
                raise ValueError("With a Redis Cluster, prefix must not contain '{' or '}'")
            self.ring_size = self.hosts[0].cluster_shards
            self._identities = [f"shard{index}" for index in range(self.ring_size)]
        else:
            self.ring_size = len(self.hosts)
            self._identities = [spec.identity for spec in self.hosts]
        self.prefix = prefix
        self.group_expiry = group_expiry
        self.block_timeout = block_timeout
        self.process_ttl = process_ttl
        self.outage_timeout = outage_timeout
        self.group_send_timeout = group_send_timeout
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self._serializer = registry.get_serializer(
            serializer_format,
            symmetric_encryption_keys=symmetric_encryption_keys,
            random_prefix_length=random_prefix_length,
            expiry=expiry,
        )
        #: This instance's id: part of its channel names and of its Redis keys.
        self.client_prefix = uuid.uuid4().hex
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._reporter = DropReporter(on_drop, drop_log_interval)
        self._hub = LocalHub(
            get_capacity=self.get_capacity,
            group_expiry=group_expiry,
            deserialize=self._serializer.deserialize,
            reporter=self._reporter,
            counters=self._counters,
            on_direct_done=self._direct_done,
        )
        self._clients = LoopClients(self.hosts)
        self._inbox_shard = self._shard(self.client_prefix)
        #: ("list" | "pubsub", shard) -> the receive loop task reading that shard.
        self._readers: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        #: shard -> plain channels some local receive() waits on.
        self._watched: dict[int, set[str]] = {}
        #: shard -> keys the current blocking pop covers.
        self._blocking: dict[int, frozenset[str]] = {}
        self._pending_decrements: dict[str, int] = {}
        # channel -> [dropped, expired] seen in Redis by this instance (bounded).
        self._redis_drops: dict[str, list[int]] = {}
        self._decrement_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._alive_until = 0.0
        self._next_prune = 0.0
        self._down_since: float | None = None
        # The last running loop _home_loop() found not to be a throwaway one.
        self._settled_loop: asyncio.AbstractEventLoop | None = None
        # Names receive() accepted -> their owner pid (None: plain); see _check_receivable.
        self._receivable: dict[str, str | None] = {}
        # The task reading this instance's inbox, as receive() last started it.
        self._inbox_task: asyncio.Task[None] | None = None
        #: Reconnections of the receive loop so far (for tests and monitoring).
        self.reconnects = 0

    # -- configuration helpers ----------------------------------------------------------

    def __str__(self) -> str:
        return f"{type(self).__name__}(hosts={self._identities})"

    def _shard(self, key: str) -> int:
        return shard_index(key, self._identities)

    def consistent_hash(self, value: str | bytes) -> int:
        """channels_redis-compatible hash of ``value`` onto ``range(ring_size)``."""
        return consistent_hash(value, self.ring_size)

    def connection(self, index: int) -> AnyRedis:
        """The redis-py client for shard ``index`` on the running event loop (with a
        Redis Cluster: the ``RedisCluster`` client shared by all logical shards)."""
        return self._clients.get(index)

    def create_pool(self, index: int) -> ConnectionPool:
        """A new connection pool for shard ``index`` (not available for a Redis Cluster)."""
        if self._cluster:
            raise TypeError("A Redis Cluster has no single connection pool; use connection()")
        return create_pool(self.hosts[index])

    def serialize(self, message: Message) -> bytes:
        """The bytes stored in Redis for ``message`` (once per send/group_send)."""
        data: bytes = self._serializer.serialize(message)
        return data

    def deserialize(self, data: bytes) -> Message:
        """The message stored as ``data``."""
        message: Message = self._serializer.deserialize(data)
        return message

    def _home_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop an operation must run on instead of the running one (None: here).

        ``async_to_sync`` called from a thread without an event loop (WSGI views,
        Celery tasks, scripts) runs each call on a new loop that it closes right after:
        connections opened there cannot be reused. Such calls are handed to the loop
        that runs this instance's receive loop, or else to the shared background loop
        of :mod:`bayou.layers.redis.sync`, whose pooled connections outlive the call.
        """
        current = asyncio.get_running_loop()
        if current is self._settled_loop:
            return None
        if not _throwaway_loop(current):
            # asgiref registers its per-call loop before running anything on it, so a
            # loop found not to be one never becomes one: skip the check next time.
            self._settled_loop = current
            return None
        reader = self._reader_loop
        if reader is not None and reader is not current and reader.is_running():
            return reader
        from bayou.layers.redis import sync

        return sync.background_loop()

    @property
    def _chore_interval(self) -> float:
        # Often enough to refresh the liveness key about three times per process_ttl.
        return min(_CHORE_INTERVAL, self.process_ttl / 3)

    def _key(self, kind: str, name: str, shard: int | None = None) -> str:
        """The Redis key (or Pub/Sub channel) ``kind`` of ``name``.

        With a Redis Cluster the key starts with the hash tag ``{<prefix>:<shard>}`` of
        its logical shard (``shard``, by default the shard owning ``name``), so every
        key a script touches is in one hash slot.
        """
        if not self._cluster:
            return f"{self.prefix}:{kind}:{name}"
        if shard is None:
            shard = self._shard(name)
        return f"{{{self.prefix}:{shard}}}:{kind}:{name}"

    def _key_prefix(self, shard: int) -> str:
        """What the Lua scripts put before ``:<kind>:<name>`` for keys of ``shard``."""
        return f"{{{self.prefix}:{shard}}}" if self._cluster else self.prefix

    def _parse_key(self, key: str, kind: str) -> str | None:
        """The name in ``key`` if it is a key (or Pub/Sub channel) of ``kind``, else None."""
        if self._cluster:
            head = "{" + self.prefix + ":"
            end = key.find("}", len(head)) if key.startswith(head) else -1
            if end < 0:
                return None
            rest = key[end + 1 :]
        elif key.startswith(self.prefix):
            rest = key[len(self.prefix) :]
        else:
            return None
        marker = f":{kind}:"
        return rest[len(marker) :] if rest.startswith(marker) else None

    def _owner(self, channel: str) -> str | None:
        """The pid owning process-specific ``channel``, or None for a plain channel.

        ``!`` names not made by this layer (no ``.<32 hex>!``) are plain channels.
        """
        bang = channel.find("!")
        if bang < 33 or channel[bang - 33] != ".":
            return None
        pid = channel[bang - 32 : bang]
        # str.strip runs in C: empty after stripping hex digits means all were hex.
        if not pid.strip("0123456789abcdef"):
            return pid
        return None

    def _check_receivable(self, channel: str) -> str | None:
        """Validate ``channel`` for ``receive()`` and return its owner (see :meth:`_owner`).

        Raises ``TypeError`` for a bad name and ``RuntimeError`` for another instance's
        channel. Names that pass are remembered (bounded) so the next call skips this.
        """
        self.require_valid_channel_name(channel)
        pid = self._owner(channel)
        if pid is not None and pid != self.client_prefix:
            raise RuntimeError(
                f"Channel {channel!r} belongs to another layer instance (process); "
                "only the instance that created it can receive from it"
            )
        if type(channel) is str:
            if len(self._receivable) >= _NAME_CACHE_SIZE:
                self._receivable.clear()
            self._receivable[channel] = pid
        return pid

    @property
    def _ttl_ms(self) -> int:
        return int((self.expiry + 10) * 1000)

    # -- channels ---------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel`` (``ChannelFull`` at capacity).

        Raises ``TypeError`` for a bad name or a non-dict message, ``ValueError`` for the
        reserved ``__asgi_channel__`` key and :class:`RedisUnavailable` if Redis cannot
        be reached. Costs one Redis command.
        """
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.send(channel, message))
        self.require_valid_channel_name(channel)
        payload = self.serialize(_require_message(message))
        now = time.time()
        entry = entries.encode(now + self.expiry, entries.DIRECT, channel, payload)
        capacity = self.get_capacity(channel)
        pid = self._owner(channel)
        with _unavailable("send"):
            if pid is not None:
                queued = await self._send_to_process(pid, channel, capacity, entry)
                expired = 0
                if queued == 2:
                    # Nobody can ever receive it (pub/sub: no process subscribed).
                    self._expired_in_redis(channel, None, 1)
                    return
            else:
                client = self._clients.get(self._shard(channel))
                keys = [self._key("ch", channel)]
                args = [int(now * 1000), capacity, entry, self._ttl_ms]
                queued, expired = await _SEND_PLAIN(client, keys, args)
        if expired:
            self._expired_in_redis(channel, None, int(expired))
        if not queued:
            self._counters["channel_full"] += 1
            raise ChannelFull(channel)
        self._counters["sent"] += 1

    async def _send_to_process(self, pid: str, channel: str, capacity: int, entry: bytes) -> int:
        """Queue a direct message for process ``pid``: 1 queued, 0 full, 2 undeliverable."""
        client = self._clients.get(self._shard(pid))
        keys = [self._key("inbox", pid), self._key("depth", pid), self._key("proc", pid)]
        result: int = await _SEND_LOCAL(client, keys, [channel, capacity, entry, self._ttl_ms])
        return result

    async def receive(self, channel: str) -> Message:
        """Wait for the next message on ``channel``.

        Process-specific channels must have been made by this instance's
        ``new_channel()`` (``RuntimeError`` otherwise). Any number of tasks may receive
        on one channel; cancelling a waiting ``receive()`` loses no message. Raises
        :class:`RedisUnavailable` if Redis stays unreachable ``outage_timeout`` seconds.
        """
        # Fast path: the inbox reader runs on this loop, so this loop is not a throwaway
        # one (readers are only started after _home_loop() said so) and nothing needs
        # starting. Consumers call receive() once per message: keep that cheap.
        inbox = self._inbox_task
        started = (
            inbox is not None
            and not inbox.done()
            and inbox.get_loop() is asyncio.get_running_loop()
        )
        if not started:
            home = self._home_loop()
            if home is not None:
                return await _run_at_home(home, self.receive(channel))
        # The checks (a regex and the owner lookup) run once per name, not per call.
        pid = self._receivable.get(channel, "") if type(channel) is str else ""
        if pid == "":
            pid = self._check_receivable(channel)
        if not started:
            self._start_inbox()
            kind = "list" if self._inbox_is_list else "pubsub"
            self._inbox_task = self._readers.get((kind, self._inbox_shard))
        if pid is not None:
            return await self._hub.receive(channel)
        shard = self._shard(channel)

        def on_wait() -> None:
            self._watch(shard, channel)

        return await self._hub.receive(channel, on_wait, self._return_orphans)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-specific channel: ``<prefix>.<instance id>!<random>``.

        Starts the receive loop, so messages sent to the name are collected from then on.
        """
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.new_channel(prefix))
        separator = "" if prefix.endswith(".") else "."
        name = f"{prefix}{separator}{self.client_prefix}!{secrets.token_hex(6)}"
        self.require_valid_channel_name(name)
        if self._may_start_here():
            self._start_inbox()
        return name

    # -- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: refreshes its join time). One command."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.group_add(group, channel))
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        pid = self._owner(channel)
        now = time.time()
        ttl = int(self.group_expiry) + 1
        keys = [self._key("group", group), self._key("gcap", group)]
        client = self._clients.get(self._shard(group))
        with _unavailable("group_add"):
            if pid == self.client_prefix:
                await self._ensure_alive()
                await _GROUP_ADD(client, keys, [f"@{pid}", now, ttl, ""])
                self._hub.add_member(group, channel)
                if self._may_start_here():
                    self._start_inbox()
            else:
                capacity = "" if pid is not None else str(self.get_capacity(channel))
                await _GROUP_ADD(client, keys, [channel, now, ttl, capacity])

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; nothing happens if it is not a member."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.group_discard(group, channel))
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        pid = self._owner(channel)
        if pid == self.client_prefix:
            if channel not in self._hub.groups.get(group, {}):
                return
            if not self._hub.remove_member(group, channel):
                return
            member = f"@{pid}"
        else:
            member = channel
        keys = [self._key("group", group), self._key("gcap", group)]
        with _unavailable("group_discard"):
            await _GROUP_DISCARD(self._clients.get(self._shard(group)), keys, [member])

    async def group_send(self, group: str, message: Message) -> None:
        """Send ``message`` to every member of ``group``; never raises ``ChannelFull``.

        The message is serialized once. With one Redis host this is exactly one
        ``EVALSHA``, which pushes one entry per member process and one per plain member
        channel; members at capacity are skipped and counted as drops. Raises
        :class:`RedisUnavailable` if Redis cannot be reached.
        """
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.group_send(group, message))
        self.require_valid_group_name(group)
        payload = self.serialize(_require_message(message))
        now = time.time()
        self._counters["group_sends"] += 1
        header = entries.deadline_field(now + self.expiry)
        gkeys = [self._key("group", group), self._key("gcap", group)]
        common = [header, group, payload, self._ttl_ms, self._key_prefix(0), self.capacity]
        with _unavailable("group_send"):
            if self.ring_size == 1:
                args = [now - self.group_expiry, int(now * 1000), *common]
                result = await self._group_send_single(group, gkeys, args)
                _, plain, _, full, expired, stale = result
            else:
                plain, full, expired, stale = await self._group_send_sharded(
                    group, gkeys, now, common
                )
        self._counters["group_deliveries"] += int(plain)
        self._counters["group_members_expired"] += int(stale)
        if expired:
            self._counters["expired"] += int(expired)
            self._reporter.report(DropEvent("expired", "(group members)", group, {}))
        for channel in full:
            self._counters["dropped_full"] += 1
            self._hub.record_group_drop(group)
            self._redis_drop(_text(channel), 0)
            self._reporter.report(DropEvent("full", _text(channel), group, {}))

    async def _group_send_single(self, group: str, keys: list[str], args: list[Any]) -> Any:
        """The one-script group_send on a single server."""
        return await _GROUP_SEND(self._clients.get(0), keys, args)

    async def _group_send_sharded(
        self, group: str, gkeys: list[str], now: float, common: list[Any]
    ) -> tuple[int, list[Any], int, int]:
        group_client = self._clients.get(self._shard(group))
        stale, members, caps = await _GROUP_MEMBERS(group_client, gkeys, [now - self.group_expiry])
        by_shard: dict[int, tuple[list[str], list[str]]] = {}
        for raw, cap in zip(members, caps, strict=True):
            member = _text(raw)
            if member.startswith("@"):
                shard = self._shard(member[1:])
            else:
                pid = self._owner(member)
                shard = self._shard(pid if pid is not None else member)
            names, capacities = by_shard.setdefault(shard, ([], []))
            names.append(member)
            capacities.append(_text(cap))
        header, group_name, payload, ttl, _, default = common

        async def push(shard: int, names: list[str], capacities: list[str]) -> Any:
            prefix = self._key_prefix(shard)
            args = [int(now * 1000), header, group_name, payload, ttl, prefix, default]
            args += [len(names), *names, *capacities, "0" if self._inbox_is_list else "1"]
            # The script builds its key names itself; with a Redis Cluster one declared
            # key of the shard routes the call to the node owning the shard's slot.
            keys = [self._key("wake", self.client_prefix, shard)] if self._cluster else []
            return await _GROUP_PUSH(self._clients.get(shard), keys, args)

        results = await asyncio.gather(
            *(push(shard, names, caps) for shard, (names, caps) in by_shard.items())
        )
        plain = expired = 0
        full: list[Any] = []
        dead: list[Any] = []
        for _, shard_plain, shard_dead, shard_full, shard_expired in results:
            plain += int(shard_plain)
            expired += int(shard_expired)
            full.extend(shard_full)
            dead.extend(shard_dead)
        for member in dead:
            await _GROUP_DISCARD(group_client, gkeys, [member])
        return plain, full, expired, int(stale)

    # -- flush / close ----------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key under ``prefix`` on every host and all local state.

        Affects every layer instance sharing the prefix. Pending ``receive()`` calls
        keep waiting; layer-wide counters keep counting.
        """
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.flush())
        pattern = _glob_escape(self.prefix) + ":*"
        indexes = range(self.ring_size)
        if self._cluster:
            # One RedisCluster client scans every primary.
            pattern, indexes = "{" + pattern, range(1)
        with _unavailable("flush"):
            for index in indexes:
                client = self._clients.get(index)
                batch: list[Any] = []
                async for key in client.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        await client.unlink(*batch)
                        batch = []
                if batch:
                    await client.unlink(*batch)
        self._hub.clear()
        self._pending_decrements.clear()
        self._redis_drops.clear()
        self._alive_until = 0.0

    async def close(self) -> None:
        """Stop the receive loop, leave Redis groups and release this loop's connections.

        Waiting ``receive()`` calls raise :class:`RedisUnavailable`. The layer can be
        used again afterwards (everything restarts lazily).
        """
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.close())
        readers = list(self._readers.values())
        self._readers.clear()
        self._inbox_task = None
        for task in readers:
            task.cancel()
        for task in list(self._background):
            task.cancel()
        current = asyncio.get_running_loop()
        same_loop = [t for t in [*readers, *self._background] if t.get_loop() is current]
        if same_loop:
            await asyncio.gather(*same_loop, return_exceptions=True)
        self._background.clear()
        self._decrement_task = None
        self._hub.fail_waiters(RedisUnavailable("The channel layer was closed"))
        with contextlib.suppress(*CONNECTION_ERRORS):
            await asyncio.wait_for(self._leave_redis(), 2.0)
        self._hub.clear()
        self._pending_decrements.clear()
        self._watched.clear()
        self._blocking.clear()
        self._reader_loop = None
        self._alive_until = 0.0
        await self._clients.aclose_current()

    async def close_pools(self) -> None:
        """channels_redis-compatible alias of :meth:`close`."""
        await self.close()

    async def _leave_redis(self) -> None:
        pid = self.client_prefix
        for group in list(self._hub.groups):
            keys = [self._key("group", group), self._key("gcap", group)]
            await _GROUP_DISCARD(self._clients.get(self._shard(group)), keys, [f"@{pid}"])
        client = self._clients.get(self._inbox_shard)
        await client.delete(
            self._key("proc", pid),
            self._key("inbox", pid),
            self._key("depth", pid),
            self._key("wake", pid, self._inbox_shard),
        )

    # -- visibility -------------------------------------------------------------------

    def stats(self) -> LayerStats:
        """Counters of this instance (drops it detected, messages it sent/received).

        ``group_deliveries`` counts plain member channels written by this instance's
        ``group_send`` plus messages this instance handed to its own members.
        """
        return LayerStats(
            **self._counters,
            channels=len(self._hub.channels),
            groups=len(self._hub.groups),
            queued=self._hub.queued,
        )

    def channel_stats(self, channel: str) -> ChannelStats:
        """Counters of ``channel`` as seen by this instance.

        ``queued`` counts messages held in this process (not those still in Redis);
        ``dropped``/``expired`` add the drops this instance detected in Redis (kept for
        the most recent few thousand channels).
        """
        local = self._hub.channel_stats(channel)
        dropped, expired = self._redis_drops.get(channel, (0, 0))
        return ChannelStats(
            channel,
            local.queued,
            local.capacity,
            local.dropped + dropped,
            local.expired + expired,
            local.congested,
        )

    def group_stats(self, group: str) -> GroupStats:
        """This instance's members of ``group`` and the drops it saw for the group."""
        return self._hub.group_stats(group)

    @property
    def on_drop(self) -> OnDrop | None:
        """The drop callback; may be replaced at any time."""
        return self._reporter.on_drop

    @on_drop.setter
    def on_drop(self, callback: OnDrop | None) -> None:
        self._reporter.on_drop = callback

    def _redis_drop(self, channel: str, which: int, count: int = 1) -> None:
        counts = self._redis_drops.get(channel)
        if counts is None:
            if len(self._redis_drops) >= _DROP_TABLE_SIZE:
                self._redis_drops.pop(next(iter(self._redis_drops)))
            counts = self._redis_drops[channel] = [0, 0]
        counts[which] += count

    def _expired_in_redis(self, channel: str, group: str | None, count: int) -> None:
        self._counters["expired"] += count
        self._redis_drop(channel, 1, count)
        for _ in range(count):
            self._reporter.report(DropEvent("expired", channel, group, {}))

    # -- depth accounting -------------------------------------------------------------

    def _direct_done(self, channel: str) -> None:
        """A direct message left the local queue: decrement its depth in Redis (batched)."""
        self._pending_decrements[channel] = self._pending_decrements.get(channel, 0) + 1
        self._schedule_decrements()

    def _schedule_decrements(self) -> None:
        if not self._pending_decrements or self._decrement_task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._decrement_task = loop.create_task(self._flush_decrements())

    async def _flush_decrements(self) -> None:
        try:
            while self._pending_decrements:
                batch = self._pending_decrements
                self._pending_decrements = {}
                args: list[Any] = []
                for channel, count in batch.items():
                    args += [channel, count]
                try:
                    client = self._clients.get(self._inbox_shard)
                    keys = [self._key("depth", self.client_prefix)]
                    await _DECREMENT(client, keys, args)
                except CONNECTION_ERRORS:
                    # Kept for the receive loop to retry once Redis is back.
                    for channel, count in batch.items():
                        self._pending_decrements[channel] = (
                            self._pending_decrements.get(channel, 0) + count
                        )
                    return
        finally:
            self._decrement_task = None

    # -- the receive loop -------------------------------------------------------------

    #: True: the inbox is a Redis list popped by the blocking loop (this class);
    #: the pub/sub layer receives its inbox by subscription instead.
    _inbox_is_list = True

    def _start_inbox(self) -> None:
        """Make sure messages for this instance's channels and groups are collected."""
        self._ensure_reader(self._inbox_shard)

    def _may_start_here(self) -> bool:
        """False if the receive loop runs on another, still running event loop (e.g. a
        new_channel()/group_add() via async_to_sync): it already collects our messages."""
        current = asyncio.get_running_loop()
        reader_loop = self._reader_loop
        return reader_loop is None or reader_loop is current or not reader_loop.is_running()

    def _loop_for_tasks(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._reader_loop is not None and self._reader_loop is not loop:
            if self._reader_loop.is_running():
                raise RuntimeError(
                    "RedisChannelLayer receives on one event loop per layer instance; "
                    "it is already receiving on another running loop"
                )
            # The previous loop is gone (e.g. a finished async_to_sync): start over here.
            self._readers.clear()
            self._blocking.clear()
            self._decrement_task = None
            self._background.clear()
            self._forget_loop_state()
        self._reader_loop = loop
        return loop

    def _forget_loop_state(self) -> None:
        """Hook: drop per-loop state when the receiving loop is gone."""

    def _ensure_reader(self, shard: int) -> None:
        loop = self._loop_for_tasks()
        task = self._readers.get(("list", shard))
        if task is None or task.done():
            self._readers[("list", shard)] = loop.create_task(self._read_loop(shard))

    def _watch(self, shard: int, channel: str) -> None:
        self._watched.setdefault(shard, set()).add(channel)
        self._ensure_reader(shard)
        if self._key("ch", channel) not in self._blocking.get(shard, frozenset()):
            self._spawn(self._wake(shard))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _wake(self, shard: int) -> None:
        key = self._key("wake", self.client_prefix, shard)
        with contextlib.suppress(*CONNECTION_ERRORS):
            client = self._clients.get(shard)
            async with client.pipeline(transaction=False) as pipe:
                pipe.rpush(key, entries.encode(0, entries.WAKE, "", b""))
                pipe.pexpire(key, 10_000)
                await pipe.execute()

    def _return_orphans(self, channel: str) -> None:
        self._spawn(self._push_back(channel))

    async def _push_back(self, channel: str) -> None:
        """Put messages popped for cancelled receivers back at the head of the list."""
        await asyncio.sleep(0)
        orphans = self._hub.surplus(channel)
        if not orphans:
            return
        values = [
            entries.encode(queued.deadline, entries.DIRECT, channel, queued.payload)
            for queued in reversed(orphans)
        ]
        try:
            await self._clients.get(self._shard(channel)).lpush(self._key("ch", channel), *values)
        except CONNECTION_ERRORS:
            logger.warning("Could not return %d message(s) to %r", len(values), channel)
            for queued in orphans:
                self._hub.deliver(channel, queued, enforce_capacity=False)

    def _reader_timeout(self, shard: int) -> float:
        # A socket timeout safely above the blocking pop: an idle consumer must never be
        # mistaken for a dead connection.
        timeout = self.block_timeout + 5.0
        configured = self.hosts[0 if self._cluster else shard].kwargs.get("socket_timeout")
        if isinstance(configured, (int, float)) and configured > timeout:
            timeout = float(configured)
        return timeout

    def _reader_client(self, shard: int) -> AnyRedis:
        # Its own connection, see _reader_timeout.
        timeout = self._reader_timeout(shard)
        if self._cluster:
            return create_cluster(
                self.hosts[0], socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
            )
        pool = create_pool(
            self.hosts[shard],
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=2,
        )
        return Redis(connection_pool=pool)

    async def _read_loop(self, shard: int) -> None:
        client: AnyRedis | None = None
        failures = 0
        next_chores = 0.0
        try:
            while True:
                # redis-py can swallow a cancellation that arrives during a blocking
                # read (the read just returns None), so check for it on every round.
                _reraise_cancellation()
                try:
                    if client is None:
                        client = self._reader_client(shard)
                        if shard == self._inbox_shard and self._inbox_is_list:
                            await self._heartbeat(client)
                        if failures:
                            self._recovered()
                        failures = 0
                    keys = self._blocking_keys(shard)
                    self._blocking[shard] = frozenset(keys)
                    popped = await client.blpop(keys, timeout=self.block_timeout)
                    self._blocking.pop(shard, None)
                    if popped is not None:
                        await self._handle(shard, client, _text(popped[0]), _bytes(popped[1]))
                    now = time.monotonic()
                    if now >= next_chores:
                        next_chores = now + min(self._chore_interval, self.block_timeout)
                        await self._chores(shard, client)
                except asyncio.CancelledError:
                    raise
                except CONNECTION_ERRORS as exc:
                    _reraise_cancellation()
                    self._blocking.pop(shard, None)
                    failures += 1
                    if client is not None:
                        await _discard(client)
                        client = None
                    self._outage(exc)
                    await asyncio.sleep(_backoff(failures))
                except Exception:
                    _reraise_cancellation()
                    logger.exception("Unexpected error in the Redis channel layer receive loop")
                    failures += 1
                    await asyncio.sleep(_backoff(failures))
        finally:
            self._blocking.pop(shard, None)
            if client is not None:
                await _discard(client)

    def _blocking_keys(self, shard: int) -> list[str]:
        keys = [self._key("wake", self.client_prefix, shard)]
        if shard == self._inbox_shard and self._inbox_is_list:
            keys.append(self._key("inbox", self.client_prefix))
        watched = self._watched.get(shard)
        if watched:
            for channel in list(watched):
                if self._hub.wants_more(channel):
                    keys.append(self._key("ch", channel))
                else:
                    watched.discard(channel)
        return keys

    async def _chores(self, shard: int, client: AnyRedis) -> None:
        """The receive loop's periodic work: expire local messages, send depth
        decrements, refresh the liveness key when due."""
        self._hub.sweep()
        self._schedule_decrements()
        self._prune_if_due()
        if (
            shard == self._inbox_shard
            and self._inbox_is_list
            and time.monotonic() >= self._alive_until
        ):
            await self._heartbeat(client)

    def _prune_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + min(60.0, max(self.group_expiry / 2, _CHORE_INTERVAL))
        for group in self._hub.prune_members():
            self._group_emptied(group)

    def _group_emptied(self, group: str) -> None:
        """Hook: the last local member of ``group`` expired; leave the group in Redis."""
        self._spawn(self._leave_group(group))

    async def _leave_group(self, group: str) -> None:
        if group in self._hub.groups:  # a member joined again meanwhile
            return
        keys = [self._key("group", group), self._key("gcap", group)]
        with contextlib.suppress(*CONNECTION_ERRORS):
            await _GROUP_DISCARD(
                self._clients.get(self._shard(group)), keys, [f"@{self.client_prefix}"]
            )

    async def _handle(self, shard: int, client: AnyRedis, key: str, value: bytes) -> None:
        inbox = self._key("inbox", self.client_prefix)
        if key == inbox:

            async def chores() -> None:
                # The entry being dispatched is already out of Redis: a failing
                # heartbeat must not lose it (the next command reconnects anyway).
                try:
                    await self._chores(shard, client)
                except CONNECTION_ERRORS as exc:
                    logger.debug("Heartbeat during back-pressure failed: %s", exc)

            await self._dispatch_with_room(value, chores)
            for _ in range(_DRAIN_ROUNDS):
                more: Any = await client.lpop(inbox, _DRAIN_BATCH)
                if not more:
                    break
                for item in more:
                    await self._dispatch_with_room(_bytes(item), chores)
                if len(more) < _DRAIN_BATCH:
                    break
            return
        channel = self._parse_key(key, "ch")
        if channel is not None:
            entry = entries.parse(value)
            queued = QueuedMessage(entry.deadline, entry.payload, None, False)
            if not self._hub.wants_more(channel):
                # Its receiver was cancelled while the pop was under way.
                self._hub.deliver(channel, queued, enforce_capacity=False)
                self._return_orphans(channel)
            else:
                self._hub.deliver(channel, queued, enforce_capacity=False)

    async def _dispatch_with_room(
        self, value: bytes, chores: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Dispatch an inbox entry, first waiting (back-pressure) while a live local
        member it is for has a full queue: the rest of the inbox waits in Redis.

        ``chores`` runs at least every :data:`_CHORE_INTERVAL` seconds while waiting: a
        slow consumer must not stop the heartbeat (the process would be declared dead
        and removed from its groups) nor the expiry of other channels' messages.
        """
        if self.group_send_timeout > 0 and len(value) > entries.DEADLINE_DIGITS:
            kind = value[entries.DEADLINE_DIGITS : entries.DEADLINE_DIGITS + 1]
            if kind in (b"g", b"d"):
                try:
                    entry = entries.parse(value)
                except ValueError:
                    entry = None
                state = None if entry is None else self._hub.blocked(entry.kind, entry.name)
                if state is not None:
                    self._counters["waits"] += 1
                waiting_on, started = state, time.monotonic()
                while state is not None and entry is not None:
                    if state is not waiting_on:
                        waiting_on, started = state, time.monotonic()
                    await self._hub.wait_for_room(
                        state,
                        self.group_send_timeout,
                        started=started,
                        max_wait=self._chore_interval,
                    )
                    if chores is not None:
                        await chores()
                    state = self._hub.blocked(entry.kind, entry.name)
        self._dispatch(value)

    def _dispatch(self, value: bytes) -> None:
        try:
            entry = entries.parse(value)
        except ValueError:
            logger.warning("Ignoring a malformed entry in the inbox of %s", self.client_prefix)
            return
        if entry.kind == entries.GROUP:
            self._hub.deliver_group(entry.name, entry.deadline, entry.payload)
        elif entry.kind == entries.DIRECT:
            queued = QueuedMessage(entry.deadline, entry.payload, None, True)
            self._hub.deliver(entry.name, queued, enforce_capacity=False)
        elif entry.kind == entries.GROUP_MEMBER:
            queued = QueuedMessage(entry.deadline, entry.payload, None, False)
            if self._hub.deliver(entry.name, queued, enforce_capacity=True):
                self._counters["group_deliveries"] += 1

    async def _ensure_alive(self) -> None:
        """Make sure the liveness key exists before this process joins a group.

        Goes through :meth:`_heartbeat`, so a key found missing (Redis restarted while
        the receive loop had not reconnected yet) also re-registers the groups.
        """
        if time.monotonic() < self._alive_until:
            return
        await self._heartbeat(self._clients.get(self._inbox_shard))

    async def _heartbeat(self, client: AnyRedis) -> None:
        """Refresh the liveness key; if it was gone (Redis restarted, or we were declared
        dead), register this process's groups again."""
        ttl = int(self.process_ttl * 1000)
        previous = await client.set(self._key("proc", self.client_prefix), b"1", px=ttl, get=True)
        self._alive_until = time.monotonic() + self.process_ttl / 3
        if previous is None and self._hub.groups:
            await self._reregister()

    async def _reregister(self) -> None:
        ttl = int(self.group_expiry) + 1
        member = f"@{self.client_prefix}"
        for group in list(self._hub.groups):
            joined = self._hub.newest_join(group)
            if joined is None:
                continue
            keys = [self._key("group", group), self._key("gcap", group)]
            await _GROUP_ADD(self._clients.get(self._shard(group)), keys, [member, joined, ttl, ""])
        logger.info("Re-registered %d group(s) of %s in Redis", len(self._hub.groups), self)

    def _outage(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            logger.warning("Redis channel layer lost its connection (%s); reconnecting", exc)
            if self.on_disconnect:
                self._notify_local(self.on_disconnect)
        if self.outage_timeout is not None and now - self._down_since >= self.outage_timeout:
            # Every reconnect attempt past the limit fails the receivers waiting by then.
            self._hub.fail_waiters(
                RedisUnavailable(f"Redis has been unreachable for {self.outage_timeout:g} s: {exc}")
            )

    def _notify_local(self, message_type: str) -> None:
        """Queue ``{"type": message_type}`` on every local channel that is in a group or
        has a waiting receiver (``on_disconnect`` / ``on_reconnect``)."""
        payload = self.serialize({"type": message_type})
        deadline = time.time() + self.expiry
        names = set(self._hub.memberships) | {
            name for name, state in self._hub.channels.items() if state.waiters
        }
        for name in names:
            if self._owner(name) == self.client_prefix:
                queued = QueuedMessage(deadline, payload, None, False)
                self._hub.deliver(name, queued, enforce_capacity=True)

    def _recovered(self) -> None:
        self.reconnects += 1
        self._down_since = None
        logger.warning("Redis channel layer reconnected")
        if self.on_reconnect:
            self._notify_local(self.on_reconnect)
        self._schedule_decrements()


def _require_message(message: object) -> Message:
    if not isinstance(message, dict):
        raise TypeError("message must be a dict")
    if "__asgi_channel__" in message:
        raise ValueError("the __asgi_channel__ key is reserved for channel layers")
    return message


def _throwaway_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True for the per-call loop asgiref's ``async_to_sync`` runs in a loop-less thread.

    asgiref registers that loop in ``AsyncToSync.loop_thread_executors`` while it runs
    (asgiref 3.x); if that ever changes, calls simply run where they are, as before.
    """
    try:
        from asgiref.sync import AsyncToSync
    except ImportError:  # pragma: no cover - asgiref comes with Django
        return False
    executors = getattr(AsyncToSync, "loop_thread_executors", None)
    return isinstance(executors, dict) and loop in executors


async def _run_at_home(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread's) and wait for it here; cancelling the
    wait cancels it there."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


def _reraise_cancellation() -> None:
    """Raise CancelledError if the current task was asked to stop.

    redis-py may turn a cancellation that races with a read into a connection error;
    the receive loop must still stop when it is cancelled.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _backoff(failures: int) -> float:
    """Jittered exponential backoff: 50 ms doubling up to 2 s, times 0.5..1."""
    delay: float = min(2.0, 0.05 * 2.0 ** min(failures, 10))
    return delay * random.uniform(0.5, 1.0)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


async def _discard(client: AnyRedis) -> None:
    await aclose_client(client)
