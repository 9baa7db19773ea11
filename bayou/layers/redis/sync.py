"""Publishing to a channel layer from sync code (WSGI views, management commands, Celery).

``async_to_sync(layer.group_send)(group, message)`` works with the Redis layers (their
connections are kept per event loop and closed when that loop closes), but it may run
a new event loop, and so open a new Redis connection, per call. The helpers here run
every call on **one long-lived background event loop** in a daemon thread instead, so
connections are pooled across calls and no "Event loop is closed" error can happen::

    from bayou.layers.redis.sync import group_send, send

    def my_view(request):
        group_send("chat-lobby", {"type": "chat.message", "text": "hi"})

They work with any bayou channel layer (``layer=`` or the ``alias`` of
``CHANNEL_LAYERS``, default ``"default"``). Calling them from a thread that runs an event
loop raises ``RuntimeError`` (await the layer method there instead). After ``fork()``
(e.g. Celery prefork workers) the child starts its own background loop on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop", "background_loop", "group_send", "run", "send"]

T = TypeVar("T")


class BackgroundLoop:
    """An event loop running forever in a daemon thread; :meth:`run` executes a coroutine
    on it and blocks the calling thread until it finishes."""

    def __init__(self, name: str = "bayou-layers-sync") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The background loop, started on first use (and again in a forked child)."""
        with self._lock:
            if self._pid != os.getpid():
                # Threads do not survive fork(): the child needs its own loop.
                self._loop = self._thread = None
                self._pid = os.getpid()
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            # Closing runs the layers' close hooks (their connections are released).
            loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the background loop and return its result (or raise its error).

        ``TimeoutError`` after ``timeout`` seconds (the coroutine is then cancelled).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "bayou.layers.redis.sync helpers block; in async code await the layer "
                "method instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and wait for its thread (called at interpreter exit)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None and self._pid == os.getpid():
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)


_background = BackgroundLoop()
atexit.register(_background.stop)


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop (started on first use).

    The Redis layers run operations here when they are awaited on a throwaway loop of
    ``async_to_sync`` (and no receive loop runs in the process), so that such calls
    reuse pooled connections instead of opening one per call.
    """
    return _background.loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the shared background loop (see :class:`BackgroundLoop`)."""
    return _background.run(coro, timeout)


def _layer(layer: Any, alias: str) -> Any:
    if layer is not None:
        return layer
    from bayou.layers import get_channel_layer

    found = get_channel_layer(alias)
    if found is None:
        raise RuntimeError(f"No channel layer is configured for alias {alias!r}")
    return found


def group_send(
    group: str,
    message: dict[str, Any],
    *,
    layer: Any = None,
    alias: str = "default",
    timeout: float | None = 10.0,
) -> None:
    """``layer.group_send(group, message)`` from sync code, on the background loop."""
    target = _layer(layer, alias)
    run(target.group_send(group, message), timeout)


def send(
    channel: str,
    message: dict[str, Any],
    *,
    layer: Any = None,
    alias: str = "default",
    timeout: float | None = 10.0,
) -> None:
    """``layer.send(channel, message)`` from sync code (may raise ``ChannelFull``)."""
    target = _layer(layer, alias)
    run(target.send(channel, message), timeout)
