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
from typing import Any

from redis.asyncio import Redis

from bayou.layers.redis.hosts import HostSpec, close_pool, create_pool

__all__ = ["LoopClients"]


class LoopClients:
    """One lazily created ``Redis`` client per (event loop, shard)."""

    def __init__(self, specs: Sequence[HostSpec], **overrides: Any) -> None:
        self._specs = list(specs)
        self._overrides = overrides
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Redis | None]]
        self._by_loop = weakref.WeakKeyDictionary()

    def get(self, index: int) -> Redis:
        """The client for shard ``index`` on the running loop."""
        if not 0 <= index < len(self._specs):
            raise ValueError(f"There are only {len(self._specs)} hosts - you asked for {index}!")
        loop = asyncio.get_running_loop()
        clients = self._by_loop.get(loop)
        if clients is None:
            clients = self._by_loop[loop] = [None] * len(self._specs)
            _on_close(loop, self._close_for_loop)
        client = clients[index]
        if client is None:
            pool = create_pool(self._specs[index], **self._overrides)
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


async def _aclose_all(clients: list[Redis | None]) -> None:
    for client in clients:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
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
