"""Redis clients per event loop, closed when their loop closes.

A redis-py asyncio connection belongs to the event loop that opened it. A layer used
from several loops (the server's loop, plus ``async_to_sync`` from WSGI views or Celery
tasks, which may run a loop per call) therefore keeps one set of pools per loop. When a
loop is closed, its pools are disconnected first (``loop.close`` is wrapped), so no
"Event loop is closed" error appears later and no connection leaks. For repeated sync
publishing without a loop per call, use :mod:`bayou.layers.redis.sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from redis.asyncio import Redis, RedisCluster

from bayou.layers.redis.hosts import HostSpec, close_pool, create_cluster, create_pool

__all__ = ["AnyRedis", "LoopClients", "aclose_client"]

#: A client for one server (or Sentinel master) or for a whole Redis Cluster.
AnyRedis: TypeAlias = Redis | RedisCluster


class LoopClients:
    """One lazily created ``Redis`` client per (event loop, shard).

    For a Redis Cluster (a single cluster spec) every logical shard shares one
    ``RedisCluster`` client per loop, which routes each command to the right node.
    """

    def __init__(self, specs: Sequence[HostSpec], **overrides: Any) -> None:
        self._specs = list(specs)
        self._overrides = overrides
        self._shards = len(self._specs)
        if len(self._specs) == 1 and self._specs[0].is_cluster:
            self._shards = self._specs[0].cluster_shards
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[AnyRedis | None]]
        self._by_loop = weakref.WeakKeyDictionary()

    def get(self, index: int) -> AnyRedis:
        """The client for shard ``index`` on the running loop."""
        if not 0 <= index < self._shards:
            raise ValueError(f"There are only {self._shards} hosts - you asked for {index}!")
        loop = asyncio.get_running_loop()
        if self._specs[0].is_cluster:
            index = 0
        clients = self._by_loop.get(loop)
        if clients is None:
            clients = self._by_loop[loop] = [None] * len(self._specs)
            _on_close(loop, self._close_for_loop)
        client = clients[index]
        if client is None:
            spec = self._specs[index]
            if spec.is_cluster:
                client = clients[index] = create_cluster(spec, **self._overrides)
            else:
                pool = create_pool(spec, **self._overrides)
                client = clients[index] = Redis(connection_pool=pool)
        return client

    def loops(self) -> int:
        """How many event loops currently hold clients (for tests and diagnostics)."""
        return len(self._by_loop)

    async def aclose_current(self) -> None:
        """Disconnect the running loop's clients (they are recreated on next use)."""
        clients = self._by_loop.pop(asyncio.get_running_loop(), None)
        if clients:
            await _aclose_all(clients)

    def _close_for_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        clients = self._by_loop.pop(loop, None)
        if clients and not loop.is_running() and not loop.is_closed():
            with contextlib.suppress(Exception):
                loop.run_until_complete(_aclose_all(clients))


async def _aclose_all(clients: list[AnyRedis | None]) -> None:
    for client in clients:
        if client is not None:
            await aclose_client(client)


async def aclose_client(client: AnyRedis) -> None:
    """Close ``client`` and disconnect its connections; never raises."""
    with contextlib.suppress(Exception):
        await client.aclose()
    if isinstance(client, Redis):
        await close_pool(client.connection_pool)


# loop -> callbacks to run before the loop really closes. One wrapper per loop, weak
# references to the owners so that a loop does not keep layers alive.
_CLOSE_HOOKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, list[weakref.WeakMethod[Callable[[asyncio.AbstractEventLoop], None]]]
] = weakref.WeakKeyDictionary()


def _on_close(
    loop: asyncio.AbstractEventLoop, callback: Callable[[asyncio.AbstractEventLoop], None]
) -> None:
    hooks = _CLOSE_HOOKS.get(loop)
    if hooks is None:
        hooks = _CLOSE_HOOKS[loop] = []
        original = loop.close

        def close() -> None:
            for ref in _CLOSE_HOOKS.pop(loop, []):
                method = ref()
                if method is not None:
                    method(loop)
            original()

        loop.close = close  # type: ignore[method-assign,unused-ignore]
    hooks.append(weakref.WeakMethod(callback))
