"""Background workers: run an ASGI application for messages on channel-layer channels.

``Worker(application, channels, channel_layer)`` listens on each named channel and feeds
its messages to one application instance per channel, created with the scope
``{"type": "channel", "channel": <name>}`` (Channels' ``channels.worker.Worker``).

Differences from Channels, both for operations:

* ``SIGTERM``/``SIGINT`` stop the worker gracefully: it stops receiving, lets every
  application instance finish the messages already handed to it (up to
  ``shutdown_timeout`` seconds), then cancels the instances. A second signal cancels at
  once.
* Finished or crashed application instances are noticed when their task ends (no
  polling timer); a crash is logged on ``bayou.worker`` and the next message for that
  channel starts a fresh instance. A listener error (e.g. a message without ``type``)
  stops the whole worker and is raised from :meth:`Worker.run`, so a supervisor sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.compatibility import guarantee_single_callable

from bayou.layers.base import BaseChannelLayer

__all__ = ["Worker"]

logger = logging.getLogger("bayou.worker")

Message = dict[str, Any]
Scope = dict[str, Any]
Application = Callable[..., Awaitable[None]]


class _Instance:
    """One running application instance and its input queue."""

    __slots__ = ("idle", "queue", "scope", "task")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        # Set while the application waits in receive() with nothing queued.
        self.idle = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> Message:
        if self.queue.empty():
            self.idle.set()
        try:
            return await self.queue.get()
        finally:
            self.idle.clear()

    def drained(self) -> bool:
        return self.idle.is_set() and self.queue.empty()


class Worker:
    """Feeds messages from channel-layer channels to application instances.

    ``channel_layer=None`` raises ``ValueError("Channel layer is not valid")``. At most
    ``max_applications`` instances run at once; the least recently used one is
    cancelled to make room.
    """

    def __init__(
        self,
        application: Any,
        channels: Iterable[str],
        channel_layer: BaseChannelLayer | None,
        max_applications: int = 1000,
        *,
        shutdown_timeout: float = 10.0,
    ) -> None:
        if channel_layer is None:
            raise ValueError("Channel layer is not valid")
        self.application = application
        self.channels = list(channels)
        self.channel_layer: BaseChannelLayer = channel_layer
        self.max_applications = max_applications
        self.shutdown_timeout = shutdown_timeout
        #: channel name -> running instance, least recently used first.
        self.application_instances: OrderedDict[str, _Instance] = OrderedDict()
        self.should_exit = False
        self.force_exit = False
        self._stop: asyncio.Event | None = None
        self._listeners: list[asyncio.Task[None]] = []

    # -- running ----------------------------------------------------------------------

    def run(self) -> None:
        """Run until a listener fails or SIGTERM/SIGINT arrives (blocking)."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a platform without signals
            installed.append(sig)
        try:
            await self.arun()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int | None = None) -> None:
        """Begin a graceful stop; called a second time, stop without waiting."""
        if self.should_exit:
            self.force_exit = True
            logger.info("Second stop request: cancelling application instances now")
            for instance in list(self.application_instances.values()):
                instance.idle.set()
                if instance.task is not None:
                    instance.task.cancel()
        else:
            name = signal.Signals(sig).name if sig is not None else "request"
            logger.info("Stopping worker (%s): finishing messages in progress", name)
        self.should_exit = True
        # Stop receiving right away: a message that arrives from now on stays on the
        # layer for another worker (receive() gives up a message it has not returned).
        for listener in self._listeners:
            listener.cancel()
        if self._stop is not None:
            self._stop.set()

    async def arun(self) -> None:
        """Run the worker in the current event loop until :meth:`handle_exit` or an error."""
        self._stop = asyncio.Event()
        if self.should_exit:
            self._stop.set()
        try:
            await self.handle()
        finally:
            await self._shutdown_applications()

    async def handle(self) -> None:
        """Listen on every channel until stopped; re-raise the first listener error."""
        assert self._stop is not None, "use arun() or run()"
        self._listeners = [asyncio.ensure_future(self.listener(name)) for name in self.channels]
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([*self._listeners, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*self._listeners, stopper):
                task.cancel()
            await asyncio.gather(*self._listeners, stopper, return_exceptions=True)
        for task in self._listeners:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def listener(self, channel: str) -> None:
        """Receive from ``channel`` forever, handing each message to its instance."""
        while True:
            message = await self.channel_layer.receive(channel)
            if not message.get("type"):
                raise ValueError("Worker received message with no type.")
            scope: Scope = {"type": "channel", "channel": channel}
            queue = self.get_or_create_application_instance(channel, scope)
            await queue.put(message)

    # -- application instances --------------------------------------------------------

    def get_or_create_application_instance(
        self, scope_id: str, scope: Scope
    ) -> asyncio.Queue[Message]:
        """The input queue of the instance for ``scope_id``, starting one if needed."""
        instance = self.application_instances.get(scope_id)
        if instance is not None:
            self.application_instances.move_to_end(scope_id)
            return instance.queue
        while (
            self.application_instances and len(self.application_instances) >= self.max_applications
        ):
            oldest_id, oldest = self.application_instances.popitem(last=False)
            logger.debug("Cancelling the least recently used instance for %r", oldest_id)
            if oldest.task is not None:
                oldest.task.cancel()
        instance = _Instance(scope)
        application = guarantee_single_callable(self.application)  # type: ignore[no-untyped-call]

        async def send(message: Message) -> None:
            await self.application_send(scope, message)

        instance.task = asyncio.ensure_future(application(scope, instance.receive, send))
        instance.task.add_done_callback(lambda task: self._instance_done(scope_id, instance, task))
        self.application_instances[scope_id] = instance
        return instance.queue

    async def application_send(self, scope: Scope, message: Message) -> None:
        """Channel-type applications have nobody to reply to; sending is an error."""
        raise NotImplementedError(
            "A worker application cannot send() replies; use the channel layer instead"
        )

    def _instance_done(self, scope_id: str, instance: _Instance, task: asyncio.Task[None]) -> None:
        if self.application_instances.get(scope_id) is instance:
            del self.application_instances[scope_id]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error(
                "Application instance for channel %r raised an exception",
                scope_id,
                exc_info=error,
            )

    async def _shutdown_applications(self) -> None:
        """Let instances finish what they were given, then cancel them."""
        instances = list(self.application_instances.values())
        if not instances:
            return
        if not self.force_exit:
            pending = [i for i in instances if i.task is not None and not i.task.done()]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.shutdown_timeout):
                    for instance in pending:
                        await self._wait_drained(instance)
        tasks = [i.task for i in instances if i.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_drained(self, instance: _Instance) -> None:
        assert instance.task is not None
        while not instance.task.done() and not instance.drained() and not self.force_exit:
            idle = asyncio.ensure_future(instance.idle.wait())
            await asyncio.wait([idle, instance.task], return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
            # A message may have been queued as the instance went idle: look again.
            await asyncio.sleep(0)
