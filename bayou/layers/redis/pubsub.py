"""``RedisPubSubChannelLayer``: process inboxes and groups over Redis Pub/Sub.

Configured like ``channels_redis.pubsub.RedisPubSubChannelLayer``; shares the local
delivery, capacity, expiry, drop counting and plain-channel code of
:class:`~bayou.layers.redis.core.RedisChannelLayer`. The differences:

* a process receives its inbox by subscribing to the Pub/Sub channel
  ``<prefix>:inbox:<pid>``, and each group it has local members in by subscribing to
  ``<prefix>:gpub:<group>``. A ``group_send`` is one ``EVALSHA`` that ``PUBLISH``es once
  (Redis itself fans out to the subscribed processes) and writes plain member channels;
  no per-process membership is stored in Redis, so crashed processes vanish from groups
  with their connection;
* Pub/Sub has no buffer: messages published while a process is disconnected are lost
  for it. ``on_disconnect`` / ``on_reconnect`` message types tell consumers to
  resynchronise. Messages to a process-specific channel of a process that is not
  subscribed are counted as expired (nobody can receive them);
* plain channels (no ``!``) keep Redis-list semantics (buffered, any reader), so the
  layer passes the same conformance suite as the list-based layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bayou.layers.redis import scripts
from bayou.layers.redis.core import (
    CONNECTION_ERRORS,
    RedisChannelLayer,
    RedisUnavailable,
    _backoff,
    _discard,
    _reraise_cancellation,
    _run_at_home,
    _Script,
    _text,
    _unavailable,
)
from bayou.layers.redis.hosts import create_node_client

__all__ = ["RedisPubSubChannelLayer"]

_PUB_SEND_LOCAL = _Script(scripts.PUB_SEND_LOCAL)
_PUB_GROUP_SEND = _Script(scripts.PUB_GROUP_SEND)


class RedisPubSubChannelLayer(RedisChannelLayer):
    """A channel layer whose process inboxes and groups use Redis Pub/Sub.

    Same arguments as :class:`~bayou.layers.redis.core.RedisChannelLayer`
    (``group_expiry`` applies to local members; ``process_ttl`` is not used).
    ``subscribe_timeout`` bounds how long ``new_channel()``/``group_add()`` wait for
    Redis to confirm a subscription before raising
    :class:`~bayou.layers.redis.core.RedisUnavailable` (default 5 s).
    """

    _inbox_is_list = False

    def __init__(self, *args: Any, subscribe_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscribe_timeout = subscribe_timeout
        self._pubsubs: dict[int, PubSub] = {}
        self._connected: dict[int, asyncio.Event] = {}
        #: Pub/Sub channels whose subscription Redis confirmed.
        self._confirmed: set[str] = set()
        self._confirm_waiters: dict[str, list[asyncio.Future[None]]] = {}

    # -- names ------------------------------------------------------------------------

    def _inbox_channel(self, pid: str) -> str:
        return self._key("inbox", pid)

    def _group_channel(self, group: str) -> str:
        return self._key("gpub", group)

    # -- operations -------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-specific channel; returns once this process is subscribed."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.new_channel(prefix))
        name = await super().new_channel(prefix)
        if self._may_start_here():
            with _unavailable("new_channel"):
                await self._subscribe(self._inbox_shard, self._inbox_channel(self.client_prefix))
        return name

    async def _send_to_process(self, pid: str, channel: str, capacity: int, entry: bytes) -> int:
        client = self._clients.get(self._shard(pid))
        keys = [self._key("depth", pid)]
        args = [channel, capacity, entry, self._ttl_ms, self._inbox_channel(pid)]
        result: int = await _PUB_SEND_LOCAL(client, keys, args)
        return result

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``. For this process's channels: subscribe to the
        group (once per group and process) and wait for Redis to confirm it."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.group_add(group, channel))
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if self._owner(channel) != self.client_prefix:
            await super().group_add(group, channel)
            return
        self._hub.add_member(group, channel)
        if not self._may_start_here():
            # The subscribing loop runs elsewhere; it picks the group up from its
            # desired subscriptions after a reconnect, so subscribe there now.
            reader_loop = self._reader_loop
            assert reader_loop is not None
            future = asyncio.run_coroutine_threadsafe(
                self._subscribe(self._shard(group), self._group_channel(group)), reader_loop
            )
            with _unavailable("group_add"):
                await asyncio.wrap_future(future)
            return
        try:
            with _unavailable("group_add"):
                await self._subscribe(self._shard(group), self._group_channel(group))
        except BaseException:
            if self._hub.remove_member(group, channel):
                self._unsubscribe(group)
            raise

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; unsubscribes when no local member is left."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.group_discard(group, channel))
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if self._owner(channel) != self.client_prefix:
            await super().group_discard(group, channel)
            return
        if channel in self._hub.groups.get(group, {}) and self._hub.remove_member(group, channel):
            self._unsubscribe(group)

    async def _group_send_single(self, group: str, keys: list[str], args: list[Any]) -> Any:
        return await _PUB_GROUP_SEND(
            self._clients.get(0), keys, [*args, self._group_channel(group)]
        )

    async def _group_send_sharded(
        self, group: str, gkeys: list[str], now: float, common: list[Any]
    ) -> tuple[int, list[Any], int, int]:
        header, _, payload = common[0], common[1], common[2]
        entry = header + b"g" + group.encode("ascii") + b"\n" + payload
        await self._clients.get(self._shard(group)).publish(self._group_channel(group), entry)
        return await super()._group_send_sharded(group, gkeys, now, common)

    async def flush(self) -> None:
        """As :meth:`RedisChannelLayer.flush`; also leaves every group subscription."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.flush())
        groups = list(self._hub.groups)
        await super().flush()
        for group in groups:
            self._unsubscribe(group)

    async def close(self) -> None:
        """Stop receiving, unsubscribe and release this loop's connections."""
        home = self._home_loop()
        if home is not None:
            return await _run_at_home(home, self.close())
        for waiters in self._confirm_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(RedisUnavailable("The channel layer was closed"))
        self._confirm_waiters.clear()
        await super().close()
        self._pubsubs.clear()
        self._connected.clear()
        self._confirmed.clear()

    # -- subscriptions ----------------------------------------------------------------

    def _start_inbox(self) -> None:
        self._ensure_pubsub(self._inbox_shard)

    def _forget_loop_state(self) -> None:
        self._pubsubs.clear()
        self._connected.clear()
        self._confirmed.clear()
        self._confirm_waiters.clear()

    def _ensure_pubsub(self, shard: int) -> None:
        loop = self._loop_for_tasks()
        task = self._readers.get(("pubsub", shard))
        if task is None or task.done():
            self._connected.setdefault(shard, asyncio.Event())
            self._readers[("pubsub", shard)] = loop.create_task(self._pubsub_loop(shard))

    def _desired(self, shard: int) -> list[str]:
        channels = [self._key("wake", self.client_prefix)]
        if shard == self._inbox_shard:
            channels.append(self._inbox_channel(self.client_prefix))
        channels += [self._group_channel(g) for g in self._hub.groups if self._shard(g) == shard]
        return channels

    async def _subscribe(self, shard: int, channel: str) -> None:
        if channel in self._confirmed:
            return
        self._ensure_pubsub(shard)
        connected = self._connected[shard]
        await asyncio.wait_for(connected.wait(), self.subscribe_timeout)
        if channel in self._confirmed:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm_waiters.setdefault(channel, []).append(waiter)
        try:
            await self._pubsubs[shard].subscribe(channel)
            await asyncio.wait_for(asyncio.shield(waiter), self.subscribe_timeout)
        finally:
            waiters = self._confirm_waiters.get(channel)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    def _unsubscribe(self, group: str) -> None:
        channel = self._group_channel(group)
        self._confirmed.discard(channel)
        pubsub = self._pubsubs.get(self._shard(group))
        if pubsub is not None:
            self._spawn(self._quiet_unsubscribe(pubsub, channel))

    async def _quiet_unsubscribe(self, pubsub: PubSub, channel: str) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await pubsub.unsubscribe(channel)

    async def _pubsub_loop(self, shard: int) -> None:
        client: Redis | None = None
        pubsub: PubSub | None = None
        failures = 0
        next_chores = 0.0
        connected = self._connected.setdefault(shard, asyncio.Event())
        try:
            while True:
                _reraise_cancellation()
                try:
                    if pubsub is None:
                        client = await self._subscriber_client(shard)
                        pubsub = client.pubsub()
                        await pubsub.subscribe(*self._desired(shard))
                        self._pubsubs[shard] = pubsub
                        connected.set()
                        if failures:
                            await self._resynchronise(shard)
                            self._recovered()
                        failures = 0
                    message = await pubsub.get_message(timeout=self.block_timeout)
                    if message is not None:
                        await self._on_pubsub_message(message)
                    now = time.monotonic()
                    if now >= next_chores:
                        next_chores = now + min(1.0, self.block_timeout)
                        await self._local_chores()
                except asyncio.CancelledError:
                    raise
                except CONNECTION_ERRORS as exc:
                    _reraise_cancellation()
                    failures += 1
                    connected.clear()
                    self._pubsubs.pop(shard, None)
                    self._lost_subscriptions(shard, exc)
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            await pubsub.aclose()  # type: ignore[no-untyped-call]
                        pubsub = None
                    if client is not None:
                        await _discard(client)
                        client = None
                    self._outage(exc)
                    await asyncio.sleep(_backoff(failures))
        finally:
            connected.clear()
            self._pubsubs.pop(shard, None)
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if client is not None:
                await _discard(client)

    async def _subscriber_client(self, shard: int) -> Redis:
        """The connection the Pub/Sub loop of ``shard`` subscribes on.

        With a Redis Cluster: a plain connection to the primary owning the shard's hash
        slot. Plain ``PUBLISH`` reaches subscribers on every node of a cluster, so any
        node would do; using the slot owner spreads subscribers over the nodes.
        """
        if not self._cluster:
            client = self._reader_client(shard)
            assert isinstance(client, Redis)
            return client
        cluster = self._clients.get(shard)
        assert isinstance(cluster, RedisCluster)
        await cluster.initialize()
        node = cluster.get_node_from_key(self._key_prefix(shard))
        if node is None:
            raise RedisUnavailable(f"No Redis Cluster node serves shard {shard}")
        return create_node_client(
            self.hosts[0],
            node.host,
            int(node.port),
            socket_timeout=self._reader_timeout(shard),
            retry=Retry(NoBackoff(), 0),
            max_connections=2,
        )

    async def _on_pubsub_message(self, message: dict[str, Any]) -> None:
        kind = _text(message.get("type"))
        if kind == "message":
            # Waiting here leaves later publications in the connection's buffers (and
            # then Redis' output buffer for this client): bounded by group_send_timeout.
            await self._dispatch_with_room(message["data"], self._local_chores)
        elif kind == "subscribe":
            channel = _text(message["channel"])
            self._confirmed.add(channel)
            for waiter in self._confirm_waiters.pop(channel, []):
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == "unsubscribe":
            channel = _text(message["channel"])
            # A late confirmation of an unsubscribe that a new group_add overtook.
            group = self._parse_key(channel, "gpub")
            if group is not None and group in self._hub.groups:
                self._spawn(self._resubscribe(self._shard(group), channel))
                return
            self._confirmed.discard(channel)

    async def _local_chores(self) -> None:
        self._hub.sweep()
        self._schedule_decrements()
        self._prune_if_due()

    def _group_emptied(self, group: str) -> None:
        self._unsubscribe(group)

    async def _resubscribe(self, shard: int, channel: str) -> None:
        self._confirmed.discard(channel)
        with contextlib.suppress(*CONNECTION_ERRORS, asyncio.TimeoutError):
            await self._subscribe(shard, channel)

    def _lost_subscriptions(self, shard: int, exc: BaseException) -> None:
        for channel in [c for c in self._confirmed if self._channel_shard(c) == shard]:
            self._confirmed.discard(channel)
        for channel, waiters in list(self._confirm_waiters.items()):
            if self._channel_shard(channel) != shard:
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(RedisUnavailable(f"Lost the subscription: {exc}"))
            del self._confirm_waiters[channel]

    def _channel_shard(self, channel: str) -> int:
        group = self._parse_key(channel, "gpub")
        if group is not None:
            return self._shard(group)
        return self._inbox_shard

    async def _resynchronise(self, shard: int) -> None:
        """After a reconnect: direct messages published meanwhile are lost, so the depth
        counters of this process's channels restart from what is queued locally."""
        if shard != self._inbox_shard:
            return
        self._pending_decrements.clear()
        client = self._clients.get(self._inbox_shard)
        await client.delete(self._key("depth", self.client_prefix))
