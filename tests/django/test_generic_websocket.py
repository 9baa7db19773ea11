"""bayou.generic.websocket: the four WebSocket consumers.

Most tests use in-memory communicators; the ``e2e`` tests at the end run the real
bayou server on 127.0.0.1 with the ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator as AsgirefCommunicator
from django.test import override_settings
from django.urls import path
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from bayou.exceptions import (
    AcceptConnection,
    DenyConnection,
    InvalidChannelLayerError,
    StopConsumer,
)
from bayou.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from bayou.layers import get_channel_layer
from bayou.routing import ProtocolTypeRouter, URLRouter
from bayou.testing import WebsocketCommunicator
from tests.support.servers import serve
from tests.support.timeouts import scaled

NO_LAYERS: dict[str, Any] = {}
T = scaled(2)


class AsyncEcho(AsyncWebsocketConsumer):
    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        if text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)


@pytest.mark.parametrize("consumer", [AsyncEcho, SyncEcho])
async def test_echo_text_and_bytes(consumer: Any) -> None:
    """The default connect() accepts; text and binary frames reach receive() and go back."""
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    assert await communicator.connect(T) == (True, None)
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from(T) == "hello"
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert await communicator.receive_from(T) == b"\x00\x01"
    await communicator.disconnect(timeout=T)


async def test_text_none_falls_back_to_bytes() -> None:
    """A receive event with ``"text": None`` is delivered as bytes."""
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await communicator.connect(T)
    await communicator.send_input({"type": "websocket.receive", "text": None, "bytes": b"b"})
    assert await communicator.receive_from(T) == b"b"
    await communicator.disconnect(timeout=T)


@pytest.mark.parametrize("sync", [False, True])
async def test_accept_with_subprotocol_and_headers(sync: bool) -> None:
    """accept(subprotocol, headers) sends both in websocket.accept."""
    if sync:

        class Sync(WebsocketConsumer):
            def connect(self) -> None:
                self.accept("chat.v2", headers=[(b"x-extra", b"1")])

        app = Sync.as_asgi()
    else:

        class Async(AsyncWebsocketConsumer):
            async def connect(self) -> None:
                await self.accept("chat.v2", headers=[(b"x-extra", b"1")])

        app = Async.as_asgi()
    communicator = WebsocketCommunicator(app, "/ws/", subprotocols=["chat.v1", "chat.v2"])
    assert await communicator.connect(T) == (True, "chat.v2")
    assert communicator.response_headers == [(b"x-extra", b"1")]
    await communicator.disconnect(timeout=T)


async def test_accept_and_deny_exceptions() -> None:
    """AcceptConnection raised in connect() accepts; DenyConnection closes (denies)."""

    class Accepting(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            raise AcceptConnection()

    class Denying(WebsocketConsumer):
        def connect(self) -> None:
            raise DenyConnection()

    communicator = WebsocketCommunicator(Accepting.as_asgi(), "/")
    assert (await communicator.connect(T))[0] is True
    await communicator.disconnect(timeout=T)
    communicator = WebsocketCommunicator(Denying.as_asgi(), "/")
    assert await communicator.connect(T) == (False, 1000)
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(T)


async def test_close_codes_and_reason() -> None:
    """close(code, reason) sends both; send(close=True) closes codeless; close=4000 uses 4000."""

    class Closer(AsyncWebsocketConsumer):
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            if text_data == "code":
                await self.close(code=4123, reason="bye")
            elif text_data == "true":
                await self.send(text_data="last", close=True)
            else:
                await self.send(text_data="last", close=4000)

    for command, expected in [
        ("code", {"type": "websocket.close", "code": 4123, "reason": "bye"}),
        ("true", {"type": "websocket.close"}),
        ("int", {"type": "websocket.close", "code": 4000}),
    ]:
        communicator = WebsocketCommunicator(Closer.as_asgi(), "/")
        await communicator.connect(T)
        await communicator.send_to(text_data=command)
        if command != "code":
            assert await communicator.receive_from(T) == "last"
        assert await communicator.receive_output(T) == expected
        await communicator.disconnect(timeout=T)


async def test_send_without_data_raises() -> None:
    """send() with neither text nor bytes raises Channels' ValueError."""

    class Empty(AsyncWebsocketConsumer):
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            await self.send()

    communicator = AsgirefCommunicator(
        Empty.as_asgi(), {"type": "websocket", "path": "/", "headers": []}
    )
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.receive_output(T)
    await communicator.send_input({"type": "websocket.receive", "text": "x"})
    with pytest.raises(ValueError, match="You must pass one of bytes_data or text_data"):
        await communicator.wait(T)


async def test_groups_join_receive_and_leave() -> None:
    """Class-level groups are joined on connect and left on disconnect."""
    group = "bayou-test-room"

    class Room(AsyncWebsocketConsumer):
        groups = [group]

        async def room_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    layer: Any = get_channel_layer()
    communicator = WebsocketCommunicator(Room.as_asgi(), "/")
    await communicator.connect(T)
    await layer.group_send(group, {"type": "room.message", "text": "to everyone"})
    assert await communicator.receive_from(T) == "to everyone"
    await communicator.disconnect(timeout=T)
    # After leaving, a group message reaches nobody.
    await layer.group_send(group, {"type": "room.message", "text": "late"})
    assert await communicator.receive_nothing(0.05)
    assert not layer.groups.get(group)


async def test_sync_groups_join_receive_and_leave() -> None:
    """The sync consumer joins and leaves groups too."""
    group = "bayou-test-sync-room"

    class Room(WebsocketConsumer):
        groups = [group]

        def room_message(self, event: dict[str, Any]) -> None:
            self.send(text_data=event["text"])

    layer: Any = get_channel_layer()
    communicator = WebsocketCommunicator(Room.as_asgi(), "/")
    await communicator.connect(T)
    await layer.group_send(group, {"type": "room.message", "text": "sync hi"})
    assert await communicator.receive_from(T) == "sync hi"
    await communicator.disconnect(timeout=T)
    assert not layer.groups.get(group)


@override_settings(CHANNEL_LAYERS=NO_LAYERS)
async def test_groups_without_layer_raise() -> None:
    """groups without a channel layer raise InvalidChannelLayerError on connect."""

    class Room(AsyncWebsocketConsumer):
        groups = ["room"]

    communicator = AsgirefCommunicator(
        Room.as_asgi(), {"type": "websocket", "path": "/", "headers": []}
    )
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(InvalidChannelLayerError, match="BACKEND is unconfigured"):
        await communicator.wait(T)


async def test_groups_are_per_instance() -> None:
    """``groups = None`` becomes a fresh list per instance."""
    first, second = AsyncEcho(), AsyncEcho()
    assert first.groups == [] and second.groups == []
    assert first.groups is not second.groups


@pytest.mark.parametrize("sync", [False, True])
async def test_json_consumers_round_trip(sync: bool) -> None:
    """receive_json gets decoded content; send_json encodes it as a text frame."""
    if sync:

        class SyncJson(JsonWebsocketConsumer):
            def receive_json(self, content: Any, **kwargs: Any) -> None:
                self.send_json({"got": content})

        app = SyncJson.as_asgi()
    else:

        class AsyncJson(AsyncJsonWebsocketConsumer):
            async def receive_json(self, content: Any, **kwargs: Any) -> None:
                await self.send_json({"got": content})

        app = AsyncJson.as_asgi()
    communicator = WebsocketCommunicator(app, "/")
    await communicator.connect(T)
    await communicator.send_json_to({"a": [1, 2]})
    assert await communicator.receive_json_from(T) == {"got": {"a": [1, 2]}}
    await communicator.disconnect(timeout=T)


@pytest.mark.parametrize("sync", [False, True])
async def test_invalid_json_closes_with_1007(sync: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Text that is not JSON closes that socket with 1007 and logs a line; nothing is raised."""
    app = (JsonWebsocketConsumer if sync else AsyncJsonWebsocketConsumer).as_asgi()
    communicator = WebsocketCommunicator(app, "/")
    await communicator.connect(T)
    with caplog.at_level(logging.WARNING, logger="bayou.consumer"):
        await communicator.send_to(text_data="{not json")
        assert await communicator.receive_output(T) == {"type": "websocket.close", "code": 1007}
    assert "invalid JSON" in caplog.text
    await communicator.disconnect(code=1007, timeout=T)


async def test_json_binary_frame_raises() -> None:
    """A binary frame on a JSON consumer raises Channels' ValueError."""
    communicator = AsgirefCommunicator(
        AsyncJsonWebsocketConsumer.as_asgi(), {"type": "websocket", "path": "/", "headers": []}
    )
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.receive_output(T)
    await communicator.send_input({"type": "websocket.receive", "bytes": b"{}"})
    with pytest.raises(ValueError, match="No text section for incoming WebSocket frame!"):
        await communicator.wait(T)


async def test_json_encode_decode_hooks() -> None:
    """decode_json/encode_json (async classmethods) are the override points."""

    class Custom(AsyncJsonWebsocketConsumer):
        @classmethod
        async def decode_json(cls, text_data: str) -> Any:
            return {"decoded": text_data}

        @classmethod
        async def encode_json(cls, content: Any) -> str:
            return "encoded:" + content["decoded"]

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await self.send_json(content)

    communicator = WebsocketCommunicator(Custom.as_asgi(), "/")
    await communicator.connect(T)
    await communicator.send_to(text_data="raw")
    assert await communicator.receive_from(T) == "encoded:raw"
    await communicator.disconnect(timeout=T)


class Denier(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.deny(status=401, headers=[(b"www-authenticate", b"Bearer")], body="log in")


async def test_deny_with_http_response_extension() -> None:
    """deny() sends a websocket.http.response when the server offers the extension."""
    scope = {
        "type": "websocket",
        "path": "/",
        "headers": [],
        "extensions": {"websocket.http.response": {}},
    }
    communicator = AsgirefCommunicator(Denier.as_asgi(), scope)
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output(T)
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 401
    assert (b"www-authenticate", b"Bearer") in start["headers"]
    assert (b"content-type", b"text/plain; charset=utf-8") in start["headers"]
    body = await communicator.receive_output(T)
    assert body == {"type": "websocket.http.response.body", "body": b"log in", "more_body": False}
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(T)


async def test_deny_without_extension_closes() -> None:
    """Without the extension deny() is a plain close before accept (the server answers 403)."""
    communicator = WebsocketCommunicator(Denier.as_asgi(), "/")
    assert await communicator.connect(T) == (False, 1000)
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(T)


async def test_deny_after_accept_raises() -> None:
    """deny() after accept() is a RuntimeError pointing to close()."""

    class Late(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.deny()

    communicator = AsgirefCommunicator(Late.as_asgi(), {"type": "websocket", "path": "/"})
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.receive_output(T)
    with pytest.raises(RuntimeError, match="use close"):
        await communicator.wait(T)


async def test_sends_after_close_are_dropped() -> None:
    """After the consumer closed the socket, further sends are dropped, not sent."""

    class Chatty(AsyncWebsocketConsumer):
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            await self.close(code=4000)
            await self.send(text_data="after close")
            await self.close(code=4001)

    communicator = WebsocketCommunicator(Chatty.as_asgi(), "/")
    await communicator.connect(T)
    await communicator.send_to(text_data="x")
    assert await communicator.receive_output(T) == {"type": "websocket.close", "code": 4000}
    assert await communicator.receive_nothing(0.05)
    await communicator.disconnect(code=4000, timeout=T)


def _recording(base: type[Any], calls: list[int], fail_in: str | None = None) -> Any:
    if base is AsyncWebsocketConsumer:

        class AsyncRecorder(AsyncWebsocketConsumer):
            groups = ["bayou-recorder"]

            async def connect(self) -> None:
                if fail_in == "connect":
                    raise RuntimeError("connect failed")
                await self.accept()

            async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
                raise RuntimeError("receive failed")

            async def disconnect(self, code: int) -> None:
                calls.append(code)

        return AsyncRecorder

    class SyncRecorder(WebsocketConsumer):
        groups = ["bayou-recorder"]

        def connect(self) -> None:
            if fail_in == "connect":
                raise RuntimeError("connect failed")
            self.accept()

        def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            raise RuntimeError("receive failed")

        def disconnect(self, code: int) -> None:
            calls.append(code)

    return SyncRecorder


@pytest.mark.parametrize("base", [AsyncWebsocketConsumer, WebsocketConsumer])
async def test_disconnect_called_once_on_normal_close(base: type[Any]) -> None:
    """A client disconnect calls disconnect(code) exactly once and leaves groups."""
    calls: list[int] = []
    communicator = WebsocketCommunicator(_recording(base, calls).as_asgi(), "/")
    await communicator.connect(T)
    await communicator.disconnect(code=1001, timeout=T)
    assert calls == [1001]
    layer: Any = get_channel_layer()
    assert not layer.groups.get("bayou-recorder")


@pytest.mark.parametrize("base", [AsyncWebsocketConsumer, WebsocketConsumer])
@pytest.mark.parametrize("fail_in", ["connect", "receive"])
async def test_handler_error_propagates_and_disconnect_runs(base: type[Any], fail_in: str) -> None:
    """An error in connect/receive reaches the server; disconnect(1011) still runs once."""
    calls: list[int] = []
    communicator = AsgirefCommunicator(
        _recording(base, calls, fail_in).as_asgi(), {"type": "websocket", "path": "/"}
    )
    await communicator.send_input({"type": "websocket.connect"})
    if fail_in == "receive":
        assert (await communicator.receive_output(T))["type"] == "websocket.accept"
        await communicator.send_input({"type": "websocket.receive", "text": "x"})
    with pytest.raises(RuntimeError, match=f"{fail_in} failed"):
        await communicator.wait(T)
    assert calls == [1011]
    layer: Any = get_channel_layer()
    assert not layer.groups.get("bayou-recorder")


async def test_never_accepting_consumer_gets_disconnect() -> None:
    """A consumer that never accepts still gets disconnect() when the client goes away."""
    calls: list[int] = []

    class Silent(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            pass

        async def disconnect(self, code: int) -> None:
            calls.append(code)

    communicator = WebsocketCommunicator(Silent.as_asgi(), "/")
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_nothing(0.05)
    await communicator.disconnect(code=1006, timeout=T)
    assert calls == [1006]


async def test_unknown_message_type_is_a_named_error() -> None:
    """A group event without a handler raises ValueError naming the type."""
    communicator = AsgirefCommunicator(AsyncEcho.as_asgi(), {"type": "websocket", "path": "/"})
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.receive_output(T)
    await communicator.send_input({"type": "chat.mystery"})
    with pytest.raises(ValueError, match=r"No handler for message type chat.mystery"):
        await communicator.wait(T)


# -- End to end: the real bayou server and the ``websockets`` client ------------------


class RoomEcho(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group = f"e2e-{self.room}"
        await self.channel_layer.group_add(self.group, self.channel_name)  # type: ignore[union-attr]
        subprotocols = self.scope.get("subprotocols") or []
        await self.accept(subprotocols[0] if subprotocols else None)

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        if text_data == "boom":
            raise RuntimeError("boom")
        if text_data and text_data.startswith("all:"):
            await self.channel_layer.group_send(  # type: ignore[union-attr]
                self.group, {"type": "room.message", "text": text_data[4:]}
            )
            return
        await self.send(text_data=f"{self.room}:{text_data}")

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=f"group:{event['text']}")

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)  # type: ignore[union-attr]


class Refuse(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close()


E2E_APP = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/room/<str:room>/", RoomEcho.as_asgi()),
                path("ws/refuse/", Refuse.as_asgi()),
                path("ws/deny/", Denier.as_asgi()),
                path("ws/json/", AsyncJsonWebsocketConsumer.as_asgi()),
            ]
        )
    }
)


async def test_e2e_echo_route_kwargs_and_subprotocol() -> None:
    """Over a real socket: url_route kwargs reach the consumer, the chosen subprotocol
    is in the handshake response, and frames echo back."""
    async with (
        serve(E2E_APP) as srv,
        connect(srv.ws_url + "/ws/room/lobby/", subprotocols=["chat"]) as ws,  # type: ignore[list-item]
    ):
        assert ws.subprotocol == "chat"
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), T) == "lobby:hello"


async def test_e2e_group_broadcast() -> None:
    """A group_send from one client reaches every member of the group."""
    async with (
        serve(E2E_APP) as srv,
        connect(srv.ws_url + "/ws/room/r1/") as first,
        connect(srv.ws_url + "/ws/room/r1/") as second,
    ):
        # One round trip each makes sure both have joined the group.
        for ws in (first, second):
            await ws.send("ready")
            assert await asyncio.wait_for(ws.recv(), T) == "r1:ready"
        await first.send("all:news")
        assert await asyncio.wait_for(first.recv(), T) == "group:news"
        assert await asyncio.wait_for(second.recv(), T) == "group:news"


async def test_e2e_handler_error_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in receive() is logged with its traceback and the client sees 1011."""
    async with serve(E2E_APP) as srv, connect(srv.ws_url + "/ws/room/x/") as ws:
        await ws.send("boom")
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), T)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert "RuntimeError: boom" in caplog.text


async def test_e2e_close_before_accept_is_403() -> None:
    """Closing before accept() makes the server answer the handshake with HTTP 403."""
    async with serve(E2E_APP) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url + "/ws/refuse/"):
                pass
    assert info.value.response.status_code == 403


async def test_e2e_deny_with_custom_response() -> None:
    """deny(status=401, headers, body) reaches the client as that HTTP response."""
    async with serve(E2E_APP) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url + "/ws/deny/"):
                pass
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"log in"


async def test_e2e_invalid_json_closes_1007() -> None:
    """Invalid JSON from a real client closes that connection with 1007."""
    async with serve(E2E_APP) as srv, connect(srv.ws_url + "/ws/json/") as ws:
        await ws.send("{broken")
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(ws.recv(), T)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007


async def test_cancelled_connection_still_disconnects() -> None:
    """If the server cancels the consumer's task, groups are left and disconnect(1011) runs."""
    calls: list[int] = []
    app = _recording(AsyncWebsocketConsumer, calls).as_asgi()
    communicator = AsgirefCommunicator(app, {"type": "websocket", "path": "/"})
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output(T))["type"] == "websocket.accept"
    communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
    assert calls == [1011]
    layer: Any = get_channel_layer()
    assert not layer.groups.get("bayou-recorder")


async def test_e2e_sync_consumer() -> None:
    """A sync WebsocketConsumer works on the real server (handlers in a thread, sync send)."""
    app = URLRouter([path("sync/", SyncEcho.as_asgi())])
    async with serve(app) as srv, connect(srv.ws_url + "/sync/") as ws:
        await ws.send("in a thread")
        assert await asyncio.wait_for(ws.recv(), T) == "in a thread"
        await ws.send(b"\x01")
        assert await asyncio.wait_for(ws.recv(), T) == b"\x01"


@pytest.mark.parametrize("sync", [False, True])
async def test_stop_consumer_without_client_disconnect_still_disconnects(sync: bool) -> None:
    """A consumer that closes and raises StopConsumer itself still gets disconnect()
    once, with the code it closed with, and leaves its groups."""
    calls: list[int] = []
    if sync:

        class SyncStopper(WebsocketConsumer):
            groups = ["bayou-stopper"]

            def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
                self.close(code=4321)
                raise StopConsumer()

            def disconnect(self, code: int) -> None:
                calls.append(code)

        app = SyncStopper.as_asgi()
    else:

        class AsyncStopper(AsyncWebsocketConsumer):
            groups = ["bayou-stopper"]

            async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
                await self.close(code=4321)
                raise StopConsumer()

            async def disconnect(self, code: int) -> None:
                calls.append(code)

        app = AsyncStopper.as_asgi()
    communicator = WebsocketCommunicator(app, "/")
    await communicator.connect(T)
    await communicator.send_to(text_data="stop")
    assert (await communicator.receive_output(T))["code"] == 4321
    await communicator.wait(T)
    assert calls == [4321]
    layer: Any = get_channel_layer()
    assert not layer.groups.get("bayou-stopper")


@pytest.mark.parametrize("sync", [False, True])
async def test_send_to_a_gone_client_is_not_an_error(sync: bool) -> None:
    """When the server's send() raises OSError (client gone, ASGI 2.4), the consumer
    keeps running and the later websocket.disconnect reaches disconnect() with its code."""
    calls: list[int] = []
    if sync:

        class SyncLate(WebsocketConsumer):
            def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
                self.send(text_data="one")
                self.send(text_data="two")

            def disconnect(self, code: int) -> None:
                calls.append(code)

        app = SyncLate.as_asgi()
    else:

        class AsyncLate(AsyncWebsocketConsumer):
            async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
                await self.send(text_data="one")
                await self.send(text_data="two")

            async def disconnect(self, code: int) -> None:
                calls.append(code)

        app = AsyncLate.as_asgi()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            sent.append(message)
            raise ConnectionResetError("the WebSocket is closed")

    await inbox.put({"type": "websocket.connect"})
    await inbox.put({"type": "websocket.receive", "text": "x"})
    await inbox.put({"type": "websocket.disconnect", "code": 1001})
    await asyncio.wait_for(app({"type": "websocket", "path": "/"}, inbox.get, send), T)
    assert [m["text"] for m in sent] == ["one"]  # the second send was dropped
    assert calls == [1001]
