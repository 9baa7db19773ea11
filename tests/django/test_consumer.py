"""bayou.consumer, bayou.utils and bayou.exceptions: dispatch, lifecycle, channel layers."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator as AsgirefCommunicator
from django.test import override_settings

from bayou import exceptions
from bayou.consumer import AsyncConsumer, SyncConsumer, get_handler_name
from bayou.exceptions import StopConsumer
from bayou.layers import get_channel_layer
from bayou.testing import ApplicationCommunicator
from bayou.utils import await_many_dispatch, name_that_thing
from tests.support.timeouts import scaled

NO_LAYERS: dict[str, Any] = {}


def test_get_handler_name_replaces_dots() -> None:
    """``chat.message`` maps to ``chat_message``; every dot becomes an underscore."""
    assert get_handler_name({"type": "chat.message"}) == "chat_message"
    assert get_handler_name({"type": "a.b.c"}) == "a_b_c"
    assert get_handler_name({"type": "plain"}) == "plain"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({}, "Incoming message has no 'type' attribute"),
        ({"type": None}, "Incoming message has no 'type' attribute"),
        ({"type": "_private"}, "Malformed type in message (leading underscore)"),
        ({"type": ".leading.dot"}, "Malformed type in message (leading underscore)"),
    ],
)
def test_get_handler_name_rejects_bad_types(message: dict[str, Any], error: str) -> None:
    """Missing types and names starting with an underscore raise Channels' ValueErrors."""
    with pytest.raises(ValueError) as info:
        get_handler_name(message)
    assert str(info.value) == error


def test_exception_hierarchy() -> None:
    """The exception classes keep Channels' bases so existing ``except`` clauses work."""
    assert issubclass(exceptions.RequestTimeout, exceptions.RequestAborted)
    assert issubclass(exceptions.InvalidChannelLayerError, ValueError)
    for name in ("AcceptConnection", "DenyConnection", "ChannelFull", "MessageTooLarge"):
        assert issubclass(getattr(exceptions, name), Exception)
    assert issubclass(StopConsumer, Exception)
    assert sorted(exceptions.__all__) == sorted(
        [
            "AcceptConnection",
            "ChannelFull",
            "DenyConnection",
            "InvalidChannelLayerError",
            "MessageTooLarge",
            "RequestAborted",
            "RequestTimeout",
            "StopConsumer",
        ]
    )


class _Named:
    def method(self) -> None:
        pass


def _function() -> None:
    pass


def test_name_that_thing() -> None:
    """Classes, functions, bound methods, instances and modules get dotted names."""
    module = __name__
    assert name_that_thing(_Named) == f"{module}._Named"
    assert name_that_thing(_function) == f"{module}._function"
    assert name_that_thing(_Named().method) == f"{module}._Named.method"
    assert name_that_thing(_Named()) == f"{module}._Named"
    assert name_that_thing(asyncio) == "asyncio"
    assert name_that_thing(len) == "builtins.len"


class EchoTypeConsumer(AsyncConsumer):
    """Replies to ``test.ping`` with ``test.pong`` and stops on ``test.stop``."""

    def __init__(self, *args: Any, greeting: str = "pong", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.greeting = greeting

    async def test_ping(self, message: dict[str, Any]) -> None:
        await self.send({"type": "test.pong", "greeting": self.greeting})

    async def test_stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


def test_as_asgi_carries_class_and_initkwargs() -> None:
    """``as_asgi`` returns an app with ``consumer_class``, ``consumer_initkwargs``, name and doc."""
    app: Any = EchoTypeConsumer.as_asgi(greeting="hi")
    assert app.consumer_class is EchoTypeConsumer
    assert app.consumer_initkwargs == {"greeting": "hi"}
    assert app.__name__ == "EchoTypeConsumer"
    assert app.__doc__ == EchoTypeConsumer.__doc__


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_dispatch_calls_handler_and_stop_consumer_ends_cleanly() -> None:
    """Events go to the handler named after their type; StopConsumer ends the app without error."""
    communicator = ApplicationCommunicator(EchoTypeConsumer.as_asgi(greeting="hi"), {"type": "x"})
    await communicator.send_input({"type": "test.ping"})
    assert await communicator.receive_output(scaled(1)) == {"type": "test.pong", "greeting": "hi"}
    await communicator.send_input({"type": "test.stop"})
    await communicator.wait(scaled(1))


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_instance_is_an_asgi_app() -> None:
    """A consumer instance can be passed directly as an ASGI application."""
    communicator = AsgirefCommunicator(EchoTypeConsumer(), {"type": "x"})
    await communicator.send_input({"type": "test.ping"})
    assert (await communicator.receive_output(scaled(1)))["greeting"] == "pong"
    await communicator.send_input({"type": "test.stop"})
    await communicator.wait(scaled(1))


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_unknown_type_raises_named_error(caplog: pytest.LogCaptureFixture) -> None:
    """An event without a handler raises ValueError naming the type, and is logged."""
    communicator = AsgirefCommunicator(EchoTypeConsumer.as_asgi(), {"type": "x"})
    with caplog.at_level(logging.ERROR, logger="bayou.consumer"):
        await communicator.send_input({"type": "chat.unknown"})
        with pytest.raises(ValueError, match=r"No handler for message type chat.unknown"):
            await communicator.wait(scaled(1))
    assert "chat_unknown" in caplog.text
    assert "EchoTypeConsumer" in caplog.text


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_no_layer_means_channel_layer_none() -> None:
    """Without CHANNEL_LAYERS the consumer has ``channel_layer = None`` and still dispatches."""
    seen: list[Any] = []

    class Probe(AsyncConsumer):
        async def probe(self, message: dict[str, Any]) -> None:
            seen.append(self.channel_layer)
            raise StopConsumer()

    communicator = ApplicationCommunicator(Probe.as_asgi(), {"type": "x"})
    await communicator.send_input({"type": "probe"})
    await communicator.wait(scaled(1))
    assert seen == [None]


async def test_channel_layer_events_are_dispatched() -> None:
    """With a layer, messages sent to ``channel_name`` reach the handler for their type."""
    names: asyncio.Queue[str] = asyncio.Queue()

    class LayerConsumer(AsyncConsumer):
        async def hello(self, message: dict[str, Any]) -> None:
            await names.put(self.channel_name)

        async def chat_message(self, message: dict[str, Any]) -> None:
            await self.send({"type": "out", "text": message["text"]})

    communicator = ApplicationCommunicator(LayerConsumer.as_asgi(), {"type": "x"})
    await communicator.send_input({"type": "hello"})
    channel_name = await asyncio.wait_for(names.get(), scaled(1))
    assert "!" in channel_name
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(channel_name, {"type": "chat.message", "text": "from the layer"})
    assert await communicator.receive_output(scaled(1)) == {"type": "out", "text": "from the layer"}
    await communicator.send_input({"type": "hello"})
    assert await asyncio.wait_for(names.get(), scaled(1)) == channel_name
    await communicator.send_input({"type": "chat.message", "text": "from the client"})
    assert (await communicator.receive_output(scaled(1)))["text"] == "from the client"
    communicator.stop()
    await asyncio.sleep(0)


async def test_layer_handler_error_propagates() -> None:
    """An exception in a handler for a channel-layer event ends the app with that exception."""
    names: asyncio.Queue[str] = asyncio.Queue()

    class Failing(AsyncConsumer):
        async def hello(self, message: dict[str, Any]) -> None:
            await names.put(self.channel_name)

        async def boom(self, message: dict[str, Any]) -> None:
            raise RuntimeError("layer handler failed")

    communicator = AsgirefCommunicator(Failing.as_asgi(), {"type": "x"})
    await communicator.send_input({"type": "hello"})
    channel_name = await asyncio.wait_for(names.get(), scaled(1))
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(channel_name, {"type": "boom"})
    with pytest.raises(RuntimeError, match="layer handler failed"):
        await communicator.wait(scaled(1))


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_sync_consumer_runs_handlers_in_a_thread() -> None:
    """SyncConsumer handlers run outside the event loop thread and ``send`` is synchronous."""
    loop_thread = threading.get_ident()

    class Sync(SyncConsumer):
        def where(self, message: dict[str, Any]) -> None:
            self.send({"type": "out", "same_thread": threading.get_ident() == loop_thread})

        def stop(self, message: dict[str, Any]) -> None:
            raise StopConsumer()

    communicator = ApplicationCommunicator(Sync.as_asgi(), {"type": "x"})
    await communicator.send_input({"type": "where"})
    assert await communicator.receive_output(scaled(2)) == {"type": "out", "same_thread": False}
    await communicator.send_input({"type": "stop"})
    await communicator.wait(scaled(2))


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_sync_consumer_unknown_type() -> None:
    """A SyncConsumer without a handler raises the same ValueError as the async one."""

    class Sync(SyncConsumer):
        pass

    communicator = AsgirefCommunicator(Sync.as_asgi(), {"type": "x"})
    await communicator.send_input({"type": "nope.nothing"})
    with pytest.raises(ValueError, match=r"No handler for message type nope.nothing"):
        await communicator.wait(scaled(2))


async def test_await_many_dispatch_serialises_and_propagates() -> None:
    """Results of all sources are dispatched one at a time; a dispatch error stops everything."""
    first: asyncio.Queue[int] = asyncio.Queue()
    second: asyncio.Queue[int] = asyncio.Queue()
    dispatched: list[int] = []
    active = 0

    async def dispatch(value: int) -> None:
        nonlocal active
        active += 1
        assert active == 1, "dispatches overlapped"
        await asyncio.sleep(0)
        dispatched.append(value)
        active -= 1
        if value == 99:
            raise StopConsumer()

    task = asyncio.create_task(await_many_dispatch([first.get, second.get], dispatch))
    for value in (1, 2, 3):
        await first.put(value)
        await second.put(value + 10)
    for _ in range(1000):  # bounded wait for the six dispatches
        if len(dispatched) == 6:
            break
        await asyncio.sleep(0.001)
    await second.put(99)
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(task, scaled(1))
    assert sorted(dispatched) == [1, 2, 3, 11, 12, 13, 99]


async def test_await_many_dispatch_source_error_and_cancellation() -> None:
    """A failing source's exception propagates; cancelling the caller cancels it cleanly."""

    async def broken() -> int:
        raise LookupError("source broke")

    never: asyncio.Queue[int] = asyncio.Queue()

    async def dispatch(value: int) -> None:
        pass

    with pytest.raises(LookupError, match="source broke"):
        await asyncio.wait_for(await_many_dispatch([never.get, broken], dispatch), scaled(1))

    task = asyncio.create_task(await_many_dispatch([never.get, never.get], dispatch))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_dispatch_gate_fifo_and_cancelled_waiters() -> None:
    """The dispatch gate hands over in FIFO order and skips waiters that were cancelled."""
    from bayou.utils import _DispatchGate

    gate = _DispatchGate()
    assert gate.try_enter()
    order: list[str] = []

    async def waiter(name: str) -> None:
        await gate.enter()
        order.append(name)
        gate.leave()

    first = asyncio.create_task(waiter("first"))
    cancelled = asyncio.create_task(waiter("cancelled"))
    last = asyncio.create_task(waiter("last"))
    await asyncio.sleep(0)
    assert not gate.try_enter()
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.leave()
    await asyncio.wait_for(asyncio.gather(first, last), scaled(1))
    assert order == ["first", "last"]
    assert cancelled.cancelled()
    assert gate.try_enter()


@pytest.mark.parametrize(
    "module_name",
    [
        "bayou.exceptions",
        "bayou.utils",
        "bayou.db",
        "bayou.consumer",
        "bayou.generic",
        "bayou.generic.websocket",
        "bayou.generic.http",
        "bayou.generic.sse",
        "bayou.routing",
        "bayou.middleware",
        "bayou.security",
        "bayou.security.websocket",
    ],
)
def test_exports_are_consistent(module_name: str) -> None:
    """Every name in a public module's ``__all__`` exists, once, and is not private."""
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} is missing"
        assert not name.startswith("_") or name == "__version__"


def test_channels_names_exist() -> None:
    """The public names of the matching channels modules exist under bayou."""
    expected = {
        "bayou.consumer": ["AsyncConsumer", "SyncConsumer", "get_handler_name"],
        "bayou.generic.websocket": [
            "WebsocketConsumer",
            "AsyncWebsocketConsumer",
            "JsonWebsocketConsumer",
            "AsyncJsonWebsocketConsumer",
        ],
        "bayou.generic.http": ["AsyncHttpConsumer"],
        "bayou.routing": [
            "get_default_application",
            "ProtocolTypeRouter",
            "URLRouter",
            "ChannelNameRouter",
        ],
        "bayou.middleware": ["BaseMiddleware"],
        "bayou.security.websocket": [
            "OriginValidator",
            "AllowedHostsOriginValidator",
            "WebsocketDenier",
        ],
        "bayou.db": [
            "DatabaseSyncToAsync",
            "database_sync_to_async",
            "aclose_old_connections",
            "close_old_connections",
        ],
        "bayou.utils": ["name_that_thing", "await_many_dispatch"],
    }
    for module_name, names in expected.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name}"
