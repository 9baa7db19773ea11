"""Channels 4.3.2 compatibility items not covered elsewhere (``docs/reference/api-compat.md``).

Each test names the checklist item it proves. Items with their own test
modules (consumers, routing, sessions, layers, ...) are tested there.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import path

from bayou.consumer import AsyncConsumer, SyncConsumer
from bayou.exceptions import StopConsumer
from bayou.generic.http import AsyncHttpConsumer
from bayou.generic.websocket import AsyncWebsocketConsumer
from bayou.layers import InMemoryChannelLayer
from bayou.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter
from bayou.testing import ApplicationCommunicator, HttpCommunicator
from tests.support.timeouts import scaled

T = scaled(2)
NO_LAYERS: dict[str, Any] = {}
TWO_LAYERS = {
    "default": {"BACKEND": "bayou.layers.InMemoryChannelLayer"},
    "other": {"BACKEND": "bayou.layers.InMemoryChannelLayer"},
}


# -- 1.2 consumer -------------------------------------------------------------------------


@override_settings(CHANNEL_LAYERS=TWO_LAYERS)
async def test_channel_layer_alias_selects_the_layer() -> None:
    """``channel_layer_alias`` picks the CHANNEL_LAYERS entry; ``channel_name`` is a new
    process-specific channel of that layer and ``channel_receive`` reads from it."""
    from bayou.layers import get_channel_layer

    seen: dict[str, Any] = {}

    class OnOther(AsyncConsumer):
        channel_layer_alias = "other"

        async def probe(self, message: dict[str, Any]) -> None:
            seen["layer"] = self.channel_layer
            seen["name"] = self.channel_name
            seen["receive"] = self.channel_receive
            await self.send({"type": "probed"})

        async def layer_event(self, message: dict[str, Any]) -> None:
            await self.send({"type": "from.layer", "value": message["value"]})
            raise StopConsumer()

    communicator = ApplicationCommunicator(OnOther.as_asgi(), {"type": "x"})  # type: ignore[no-untyped-call]
    await communicator.send_input({"type": "probe"})
    assert (await communicator.receive_output(T))["type"] == "probed"
    other = get_channel_layer("other")
    assert seen["layer"] is other and seen["layer"] is not get_channel_layer()
    assert "!" in seen["name"]
    assert isinstance(seen["receive"], functools.partial)
    assert other is not None
    await other.send(seen["name"], {"type": "layer.event", "value": 7})
    assert await communicator.receive_output(T) == {"type": "from.layer", "value": 7}
    await communicator.wait(T)


class _Awaitables:
    """ASGI ``receive``/``send`` that are not coroutine functions: callable objects
    returning futures (allowed: any awaitable callable)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: list[dict[str, Any]] = []

    def receive(self) -> asyncio.Future[dict[str, Any]]:
        return asyncio.ensure_future(self.inbox.get())

    def send(self, message: dict[str, Any]) -> asyncio.Future[None]:
        self.outbox.append(message)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@pytest.mark.parametrize("sync", [False, True])
@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_receive_and_send_may_be_any_awaitable_callables(sync: bool) -> None:
    """A consumer works with ``receive``/``send`` that return plain awaitables (futures),
    for async and sync consumers alike."""

    class AsyncPing(AsyncConsumer):
        async def ping(self, message: dict[str, Any]) -> None:
            await self.send({"type": "pong"})
            raise StopConsumer()

    class SyncPing(SyncConsumer):
        def ping(self, message: dict[str, Any]) -> None:
            self.send({"type": "pong"})
            raise StopConsumer()

    channel = _Awaitables()
    await channel.inbox.put({"type": "ping"})
    consumer = SyncPing() if sync else AsyncPing()
    await asyncio.wait_for(consumer({"type": "x"}, channel.receive, channel.send), T)
    assert channel.outbox == [{"type": "pong"}]


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_sync_handler_in_async_consumer_is_a_named_type_error() -> None:
    """Section 4 "sync vs async handler families must not be mixed": a plain ``def``
    handler on an AsyncConsumer raises TypeError naming the handler and the fix."""

    class Mixed(AsyncConsumer):
        def chat_message(self, message: dict[str, Any]) -> None:
            pass

    communicator = ApplicationCommunicator(Mixed.as_asgi(), {"type": "x"})  # type: ignore[no-untyped-call]
    await communicator.send_input({"type": "chat.message"})
    with pytest.raises(TypeError, match=r"Mixed\.chat_message must be a coroutine function"):
        await communicator.wait(T)


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_async_handler_in_sync_consumer_is_a_named_type_error() -> None:
    """An ``async def`` handler on a SyncConsumer raises TypeError naming it; the
    coroutine is closed, so no "never awaited" warning follows (warnings are errors)."""

    class Mixed(SyncConsumer):
        async def chat_message(self, message: dict[str, Any]) -> None:
            pass

    communicator = ApplicationCommunicator(Mixed.as_asgi(), {"type": "x"})  # type: ignore[no-untyped-call]
    await communicator.send_input({"type": "chat.message"})
    with pytest.raises(TypeError, match=r"Mixed\.chat_message must be a plain function"):
        await communicator.wait(T)


# -- 1.4 generic.http ---------------------------------------------------------------------


def test_http_consumer_init_sets_body_and_calls_super() -> None:
    """``AsyncHttpConsumer.__init__(*args, **kwargs)`` starts with ``body == []`` and
    calls ``super().__init__`` with its arguments, so a mixin later in the MRO is set up."""

    class Base(AsyncConsumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__()
            self.base_args = (args, kwargs)

    class Mixed(AsyncHttpConsumer, Base):
        pass

    assert AsyncHttpConsumer().body == []
    consumer = Mixed(1, x=2)
    assert consumer.body == []
    assert consumer.base_args == ((1,), {"x": 2})


# -- 1.5 routing --------------------------------------------------------------------------


def test_routing_a_consumer_class_without_as_asgi_is_refused() -> None:
    """Routing the class itself (Channels 2 style) fails when the router is built,
    with ``.as_asgi()`` in the message, instead of on the first connection."""
    with pytest.raises(ImproperlyConfigured, match=r"Route AsyncWebsocketConsumer\.as_asgi\(\)"):
        URLRouter([path("ws/", AsyncWebsocketConsumer)])  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match=r"ProtocolTypeRouter\['websocket'\]"):
        ProtocolTypeRouter({"websocket": AsyncWebsocketConsumer})
    with pytest.raises(ImproperlyConfigured, match=r"ChannelNameRouter\['jobs'\]"):
        ChannelNameRouter({"jobs": AsyncConsumer})


async def test_url_router_adapts_double_callable_apps() -> None:
    """As Channels does (``guarantee_single_callable``), an ASGI 2 application under a
    route is adapted to ASGI 3."""

    class Asgi2App:
        def __init__(self, scope: dict[str, Any]) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await receive()
            body = repr(self.scope["url_route"]["kwargs"]).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    router = URLRouter([path("items/<int:pk>/", Asgi2App)])  # type: ignore[arg-type]
    response = await HttpCommunicator(router, "GET", "/items/5/").get_response(T)
    assert response["status"] == 200
    assert response["body"] == b"{'pk': 5}"


# -- 1.12 layers --------------------------------------------------------------------------


def test_in_memory_layer_constructor_accepts_unknown_kwargs() -> None:
    """``InMemoryChannelLayer(**kwargs)`` ignores options it does not know, so a
    CONFIG written for another backend still constructs (Channels' signature)."""
    layer = InMemoryChannelLayer(
        expiry=5, group_expiry=10, capacity=3, symmetric_encryption_keys=[]
    )
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (5, 10, 3)
    assert layer.extensions == ["groups", "flush"]


# -- 1.13 runworker -----------------------------------------------------------------------


def test_runworker_accepts_channels_arguments_and_standard_django_options() -> None:
    """``runworker CHANNEL [CHANNEL ...]`` with ``--layer`` and Django's standard options
    (``--settings``, ``--pythonpath``, ``-v``, ``--traceback``, ``--no-color``,
    ``--force-color``, ``--skip-checks``) parses as with Channels; channels are required."""
    from bayou.management.commands.runworker import Command

    parser = Command().create_parser("manage.py", "runworker")
    options = parser.parse_args(
        [
            "--layer",
            "other",
            "--settings",
            "tests.django.settings",
            "--pythonpath",
            ".",
            "-v",
            "2",
            "--traceback",
            "--no-color",
            "--skip-checks",
            "jobs",
            "mail",
        ]
    )
    assert options.channels == ["jobs", "mail"]
    assert options.layer == "other"
    assert options.verbosity == 2 and options.traceback and options.no_color
    assert parser.parse_args(["--force-color", "jobs"]).force_color
    assert parser.parse_args(["jobs"]).layer == "default"
