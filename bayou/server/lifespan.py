"""The ASGI lifespan protocol (2.0), run once per server process.

``Lifespan(app, mode, state)`` runs the application's ``lifespan`` scope in
its own task. ``startup()`` returns once the application answered
``lifespan.startup.complete`` (or turned out not to speak lifespan, in
"auto" mode) and raises :class:`LifespanFailure` on ``lifespan.startup.failed``.
``shutdown()`` sends ``lifespan.shutdown`` and waits for the answer (at most
``shutdown_timeout`` seconds, then the lifespan task is cancelled).

``SystemExit`` / ``KeyboardInterrupt`` raised by the application's lifespan
code is never mistaken for missing lifespan support: during startup it is
logged and fails startup in every mode.

Modes: "on" requires lifespan support (an application that raises or returns
before completing startup is a failure); "auto" (the default) tolerates
applications that raise on the ``lifespan`` scope, as the spec asks — Django's
own ``ASGIHandler`` and Channels' ``ProtocolTypeRouter`` without a "lifespan"
entry do; "off" never calls the application with a lifespan scope.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

__all__ = ["Lifespan", "LifespanFailure"]

logger = logging.getLogger("bayou.server")

Message = dict[str, Any]


class LifespanFailure(Exception):
    """Startup (or, in "on" mode, lifespan support itself) failed; ``str()`` is the
    application's message. The server must not start (exit code 3)."""


class Lifespan:
    """Drives one application's lifespan scope. Not reusable."""

    def __init__(
        self,
        app: Any,
        mode: Literal["auto", "on", "off"],
        state: dict[str, Any],
        shutdown_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.shutdown_timeout = shutdown_timeout
        self.mode = mode
        self.state = state
        self._receive_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._startup_failed: str | None = None
        self._shutdown_failed: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.supported = mode != "off"
        """False once the application showed it does not speak lifespan."""

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the application's answer."""
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="bayou lifespan")
        await self._receive_queue.put({"type": "lifespan.startup"})
        startup_wait = loop.create_task(self._startup_done.wait())
        try:
            await asyncio.wait({startup_wait, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            startup_wait.cancel()
        if self._startup_failed is not None:
            raise LifespanFailure(self._startup_failed)
        if self._startup_done.is_set():
            return
        # The application finished (returned or raised) without answering.
        self.supported = False
        if self._error is not None and not isinstance(self._error, Exception):
            # sys.exit() / KeyboardInterrupt in startup code: a real failure.
            raise LifespanFailure(f"Exception in 'lifespan' protocol: {self._error!r}")
        if self.mode == "on":
            if self._error is not None:
                raise LifespanFailure(f"Exception in 'lifespan' protocol: {self._error!r}")
            raise LifespanFailure("The application returned during lifespan startup.")
        if self._error is not None:
            # Shown so that a real bug in startup code is not mistaken for
            # missing lifespan support (use --lifespan on to make it fatal).
            logger.info(
                "ASGI 'lifespan' protocol appears unsupported (%s: %s).",
                type(self._error).__name__,
                self._error,
            )
        else:
            logger.info("ASGI 'lifespan' protocol appears unsupported.")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for completion, failure or the
        application's end. Logs (does not raise) ``lifespan.shutdown.failed``.

        After ``shutdown_timeout`` seconds (None: no limit) without an answer,
        logs an error and cancels the lifespan task.
        """
        if not self.supported or self._task is None:
            return
        if self._task.done():
            return
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        shutdown_wait = asyncio.ensure_future(self._shutdown_done.wait())
        try:
            done, _ = await asyncio.wait(
                {shutdown_wait, self._task},
                timeout=self.shutdown_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            shutdown_wait.cancel()
        if not done:
            logger.error(
                "Lifespan shutdown did not complete within %ss; cancelling it",
                self.shutdown_timeout,
            )
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self.shutdown_timeout)
            return
        if self._shutdown_failed is not None:
            logger.error("Lifespan shutdown failed: %s", self._shutdown_failed)

    def cancel(self) -> None:
        """Cancel the lifespan task (forced exit)."""
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc
            if self._startup_done.is_set() or self.mode == "on" or not isinstance(exc, Exception):
                # Past startup, or lifespan was demanded: this is a real error.
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
            else:
                logger.debug("Lifespan startup raised", exc_info=exc)

    async def _receive(self) -> Message:
        return await self._receive_queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if self._startup_done.is_set():
                raise RuntimeError(f"Unexpected {kind!r}: startup already answered")
            if kind == "lifespan.startup.failed":
                self._startup_failed = str(message.get("message", ""))
            self._startup_done.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if not self._startup_done.is_set() or self._shutdown_done.is_set():
                raise RuntimeError(f"Unexpected {kind!r}")
            if kind == "lifespan.shutdown.failed":
                self._shutdown_failed = str(message.get("message", ""))
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"Unexpected lifespan message type {kind!r}")
