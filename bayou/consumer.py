"""Consumers: classes that handle one connection (one ASGI scope) each.

``AsyncConsumer`` and ``SyncConsumer`` keep the API of ``channels.consumer``:
incoming events from the client and from the channel layer are dispatched,
one at a time, to the method named after the event's ``type`` with dots
replaced by underscores (``"chat.message"`` -> ``chat_message``), until a
handler raises :class:`~bayou.exceptions.StopConsumer`.

Where bayou is faster than Channels, and why it is still the same behaviour:

* no task is created per event (see :func:`bayou.utils.await_many_dispatch`);
* ``type`` -> handler-name conversion is cached (the mapping does not depend on
  the class), and the handler itself is still looked up on the instance, so
  per-instance handlers keep working;
* ``aclose_old_connections`` does no thread hop when no database connection
  is open (see :mod:`bayou.db`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import types
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from asgiref.sync import async_to_sync, iscoroutinefunction

from bayou import DEFAULT_CHANNEL_LAYER
from bayou.db import aclose_old_connections, connections_may_be_open, database_sync_to_async
from bayou.exceptions import StopConsumer
from bayou.utils import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    await_many_dispatch,
    name_that_thing,
)

if TYPE_CHECKING:
    from bayou.layers.base import BaseChannelLayer

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]

logger = logging.getLogger("bayou.consumer")

# Bounded: message types come from the server and from application code, but
# a misbehaving producer must not grow this forever.
_HANDLER_NAME_CACHE_SIZE = 1024
_handler_names: dict[str, str] = {}
# What an ``async def`` handler returns; checked by identity on every event.
_COROUTINE = types.CoroutineType


def get_handler_name(message: Message) -> str:
    """The method name for ``message``: its ``type`` with every ``.`` replaced by ``_``.

    Raises ``ValueError`` when there is no ``type`` or when the name would
    start with an underscore (private methods are never handlers).
    """
    try:
        message_type = message["type"]
    except (KeyError, TypeError):
        raise ValueError("Incoming message has no 'type' attribute") from None
    if not isinstance(message_type, str):
        raise ValueError("Incoming message has no 'type' attribute")
    name = _handler_names.get(message_type)
    if name is not None:
        return name
    name = message_type.replace(".", "_")
    if name.startswith("_"):
        raise ValueError("Malformed type in message (leading underscore)")
    if len(_handler_names) < _HANDLER_NAME_CACHE_SIZE:
        _handler_names[message_type] = name
    return name


def _no_handler(consumer: object, message: Message) -> NoReturn:
    # Logged here as well because the type is the one thing needed to fix it
    # and the server's traceback does not name the consumer class.
    logger.error(
        "%s has no handler for message type %r (expected a method named %r)",
        name_that_thing(consumer),
        message["type"],
        get_handler_name(message),
    )
    raise ValueError(f"No handler for message type {message['type']}")


def _wrong_family(consumer: object, name: str, expected: str, other: str) -> NoReturn:
    # Channels fails here with "object NoneType can't be used in 'await'
    # expression" (or a never-awaited coroutine): name the handler and the fix.
    raise TypeError(
        f"{name_that_thing(consumer)}.{name} must be {expected}: sync and async handlers "
        f"cannot be mixed in one consumer (derive from {other} for the other kind)"
    )


def _as_coroutine_function(send: Send) -> Send:
    """``send`` itself if it is a coroutine function, else an ``async def`` around it.

    ASGI allows any awaitable callable; ``async_to_sync`` warns about anything
    that is not marked async, which a plain callable returning a future is not.
    """
    # An instance with an ``async def __call__`` counts as marked (asgiref checks both).
    if iscoroutinefunction(send) or iscoroutinefunction(type(send).__call__):
        return send

    async def send_awaitable(message: Message) -> None:
        await send(message)

    return send_awaitable


def _get_channel_layer(alias: str) -> BaseChannelLayer | None:
    # Imported late: bayou.layers reads settings, and consumers are imported
    # while URL configuration loads.
    from bayou.layers import get_channel_layer

    return get_channel_layer(alias)


class AsyncConsumer:
    """Base class for consumers whose handlers are coroutines.

    Attributes available to handlers: ``scope``, ``channel_layer`` (``None``
    without a configured layer), ``channel_name`` and ``channel_receive``
    (only when there is a layer), ``base_send``.
    """

    _sync: ClassVar[bool] = False
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER

    scope: Scope
    channel_layer: BaseChannelLayer | None
    channel_name: str
    channel_receive: Callable[[], Awaitable[Message]]
    base_send: Callable[[Message], Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the consumer for one connection until a handler raises ``StopConsumer``."""
        self.scope = scope
        self.base_send = async_to_sync(_as_coroutine_function(send)) if self._sync else send
        sources: list[Callable[[], Awaitable[Message]]] = [receive]
        layer = self.channel_layer = _get_channel_layer(self.channel_layer_alias)
        if layer is not None:
            self.channel_name = await layer.new_channel()
            self.channel_receive = functools.partial(layer.receive, self.channel_name)
            sources.append(self.channel_receive)
        sources.extend(self._event_sources())
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch(sources, self.dispatch)

    def _event_sources(self) -> list[Callable[[], Awaitable[Message]]]:
        """Extra message sources dispatched like client and channel-layer events.

        Private hook for bayou's own consumers (the SSE consumer feeds its
        stream and keepalive ticks through it, so every send happens inside a
        serialized dispatch).
        """
        return []

    async def dispatch(self, message: Message) -> None:
        """Call the handler for ``message``; ``ValueError`` naming the type if there is none."""
        try:
            name = _handler_names[message["type"]]
        except (KeyError, TypeError):
            name = get_handler_name(message)  # cache miss, or the precise error
        handler = getattr(self, name, None)
        if handler is None:
            _no_handler(self, message)
        # Same as ``await aclose_old_connections()``, minus a coroutine per event
        # when no connection is open (the common case for async consumers).
        if connections_may_be_open():
            await aclose_old_connections()
        result = handler(message)
        if result.__class__ is not _COROUTINE and not inspect.isawaitable(result):
            _wrong_family(self, name, "a coroutine function (async def)", "SyncConsumer")
        await result

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the client (through the server)."""
        await self.base_send(message)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        """An ASGI application that runs a new ``cls(**initkwargs)`` for each connection.

        The application carries ``consumer_class`` and ``consumer_initkwargs``
        attributes and the class's name and docstring.
        """

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            consumer = cls(**initkwargs)
            await consumer(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app


class SyncConsumer(AsyncConsumer):
    """Base class for consumers whose handlers are plain functions.

    Each handler runs in a worker thread through ``database_sync_to_async``
    (old database connections are closed before and after), and
    :meth:`send` is synchronous.
    """

    _sync: ClassVar[bool] = True

    @database_sync_to_async
    def dispatch(self, message: Message) -> None:
        """Call the sync handler for ``message`` in the worker thread."""
        name = get_handler_name(message)
        handler = getattr(self, name, None)
        if handler is None:
            _no_handler(self, message)
        result = handler(message)
        if inspect.iscoroutine(result):
            result.close()  # never awaited: close it so no RuntimeWarning follows
            _wrong_family(self, name, "a plain function (def)", "AsyncConsumer")

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an ASGI message to the client; blocks until the server has taken it."""
        self.base_send(message)
