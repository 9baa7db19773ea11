"""Small helpers shared by consumers and routers.

``name_that_thing`` and ``await_many_dispatch`` keep the names and contracts of
``channels.utils``; the ASGI type aliases are used across bayou's Django layer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "await_many_dispatch",
    "name_that_thing",
]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def name_that_thing(thing: object) -> str:
    """A dotted, human-readable name for a class, function, method, module or instance.

    Classes and functions give ``module.QualName``; bound methods give the
    name of their owner plus ``.method``; modules give their name; any other
    object gives the name of its class.
    """
    if isinstance(thing, types.MethodType):
        owner = thing.__self__
        return f"{name_that_thing(owner)}.{thing.__func__.__name__}"
    if isinstance(thing, types.ModuleType):
        return thing.__name__
    if isinstance(thing, (type, types.FunctionType, types.BuiltinFunctionType)):
        module = getattr(thing, "__module__", None)
        return f"{module}.{thing.__qualname__}" if module else thing.__qualname__
    return name_that_thing(type(thing))


class _DispatchGate:
    """A mutex for the dispatch loop whose uncontended path is plain attribute access.

    ``asyncio.Lock`` costs three coroutine objects per ``async with``; this
    runs once per message. Ownership passes directly to the oldest waiter on
    ``leave()`` (FIFO), so a busy client cannot starve channel-layer events.
    """

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_enter(self) -> bool:
        if self.busy or self.waiters:
            return False
        self.busy = True
        return True

    async def enter(self) -> None:
        if self.try_enter():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The gate was handed to us as we were cancelled: pass it on.
                self.leave()
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            raise

    def leave(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # ``busy`` stays True: the waiter owns the gate now
                return
        self.busy = False


async def await_many_dispatch(
    consumer_callables: Sequence[Callable[[], Awaitable[Any]]],
    dispatch: Callable[[Any], Awaitable[Any]],
) -> None:
    """Await every callable over and over and ``dispatch`` each result, one at a time.

    Results are dispatched in the order they arrive and never concurrently:
    a dispatch finishes before the next one starts. When a dispatch or a
    callable raises (``StopConsumer`` included), the others are cancelled and
    the exception propagates to the caller. Cancelling the caller cancels
    everything.

    Unlike Channels, no task is created per message: the first callable (the
    ASGI ``receive``) is awaited directly in the caller's task, and each other
    callable (a channel layer's ``receive``) gets one long-lived task for the
    whole connection. A gate (a cheap FIFO mutex) keeps dispatches serial.
    """
    if not consumer_callables:
        return
    first, *others = consumer_callables
    if not others:
        # The common case without a channel layer: no tasks, no gate.
        while True:
            await dispatch(await first())

    main = asyncio.current_task()
    assert main is not None, "await_many_dispatch must run inside a task"
    gate = _DispatchGate()
    failure: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        # Always called with the gate held, so the main task is parked in
        # ``first()`` or waiting for the gate, never in the middle of a dispatch.
        if not failure:
            failure.append(exc)
            main.cancel()

    async def pump(source: Callable[[], Awaitable[Any]]) -> None:
        me = asyncio.current_task()
        assert me is not None
        while True:
            try:
                message = await source()
            except BaseException as exc:
                if me.cancelling():
                    raise
                await gate.enter()
                try:
                    fail(exc)
                finally:
                    gate.leave()
                return
            await gate.enter()
            try:
                await dispatch(message)
            except BaseException as exc:
                if me.cancelling():
                    raise
                fail(exc)
                return
            finally:
                gate.leave()

    pumps = [asyncio.create_task(pump(source)) for source in others]
    try:
        while True:
            message = await first()
            if not gate.try_enter():
                await gate.enter()
            try:
                await dispatch(message)
            finally:
                gate.leave()
    except asyncio.CancelledError:
        if failure and main.uncancel() == 0:
            raise failure[0] from None
        raise
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
