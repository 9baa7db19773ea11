"""bayou.generic.http.AsyncHttpConsumer: responses, streaming, long-poll, disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator as AsgirefCommunicator

from bayou.generic.http import AsyncHttpConsumer
from bayou.layers import get_channel_layer
from bayou.testing import HttpCommunicator
from tests.support.timeouts import scaled

T = scaled(2)
HTTP_SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": []}


class Echo(AsyncHttpConsumer):
    disconnects = 0

    async def handle(self, body: bytes) -> None:
        await self.send_response(200, b"got " + body, headers={b"content-type": b"text/plain"})

    async def disconnect(self) -> None:
        type(self).disconnects += 1


async def test_send_response_with_dict_headers() -> None:
    """send_response sends status, dict headers (as pairs) and the body; disconnect runs once."""
    Echo.disconnects = 0
    communicator = HttpCommunicator(Echo.as_asgi(), "POST", "/", body=b"data")
    response = await communicator.get_response(T)
    assert response["status"] == 200
    assert response["headers"] == [(b"content-type", b"text/plain")]
    assert response["body"] == b"got data"
    await communicator.wait(T)
    assert Echo.disconnects == 1


async def test_body_chunks_are_joined() -> None:
    """Request bodies sent in several http.request events reach handle() joined."""
    communicator = AsgirefCommunicator(Echo.as_asgi(), HTTP_SCOPE)
    await communicator.send_input({"type": "http.request", "body": b"a", "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b"b", "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b"c"})
    start = await communicator.receive_output(T)
    assert start["status"] == 200
    assert (await communicator.receive_output(T))["body"] == b"got abc"
    await communicator.wait(T)


async def test_streaming_response() -> None:
    """send_headers + send_body(more_body=True) stream chunks; the last chunk ends the response."""

    class Streamer(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers(headers=[(b"content-type", b"text/plain")])
            for chunk in (b"one ", b"two ", b"three"):
                await self.send_body(chunk, more_body=True)
            await self.send_body(b"")

    response = await HttpCommunicator(Streamer.as_asgi(), "GET", "/").get_response(T)
    assert response["status"] == 200
    assert response["body"] == b"one two three"


async def test_handle_must_be_overridden() -> None:
    """The default handle() raises NotImplementedError with Channels' message."""
    communicator = AsgirefCommunicator(AsyncHttpConsumer.as_asgi(), HTTP_SCOPE)
    await communicator.send_input({"type": "http.request", "body": b""})
    with pytest.raises(NotImplementedError, match="must provide a handle"):
        await communicator.wait(T)


async def test_handle_exception_propagates_after_disconnect() -> None:
    """An exception in handle() propagates to the server; disconnect() ran before."""
    calls: list[str] = []

    class Broken(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            raise KeyError("broken")

        async def disconnect(self) -> None:
            calls.append("disconnect")

    communicator = AsgirefCommunicator(Broken.as_asgi(), HTTP_SCOPE)
    await communicator.send_input({"type": "http.request", "body": b""})
    with pytest.raises(KeyError):
        await communicator.wait(T)
    assert calls == ["disconnect"]


async def test_send_body_requires_bytes() -> None:
    """send_body with a str fails the ``Body is not bytes`` assertion."""

    class Wrong(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body("text")  # type: ignore[arg-type]

    communicator = AsgirefCommunicator(Wrong.as_asgi(), HTTP_SCOPE)
    await communicator.send_input({"type": "http.request", "body": b""})
    await communicator.receive_output(T)
    with pytest.raises(AssertionError, match="Body is not bytes"):
        await communicator.wait(T)


class LongPoll(AsyncHttpConsumer):
    """The long-poll example from the Channels docs: handle() opens, a layer event finishes."""

    channel_names: asyncio.Queue[str]
    disconnects: list[str]

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"application/json")])
        await self.send_body(b"", more_body=True)
        await type(self).channel_names.put(self.channel_name)

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_body(event["text"].encode())

    async def disconnect(self) -> None:
        type(self).disconnects.append("disconnect")


async def test_long_poll_finished_by_channel_layer_event() -> None:
    """A response left open by handle() is finished by a channel-layer event; then disconnect()."""
    LongPoll.channel_names = asyncio.Queue()
    LongPoll.disconnects = []
    communicator = HttpCommunicator(LongPoll.as_asgi(), "GET", "/poll")
    response_task = asyncio.create_task(communicator.get_response(T))
    channel_name = await asyncio.wait_for(LongPoll.channel_names.get(), T)
    layer: Any = get_channel_layer()
    await layer.send(channel_name, {"type": "chat.message", "text": '{"hi": 1}'})
    response = await response_task
    assert response["body"] == b'{"hi": 1}'
    await communicator.wait(T)
    assert LongPoll.disconnects == ["disconnect"]


async def test_client_disconnect_during_open_response() -> None:
    """http.disconnect while a response is open calls disconnect() once and ends the consumer."""
    LongPoll.channel_names = asyncio.Queue()
    LongPoll.disconnects = []
    communicator = AsgirefCommunicator(LongPoll.as_asgi(), {**HTTP_SCOPE, "method": "GET"})
    await communicator.send_input({"type": "http.request", "body": b""})
    await asyncio.wait_for(LongPoll.channel_names.get(), T)
    assert (await communicator.receive_output(T))["type"] == "http.response.start"
    await communicator.receive_output(T)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(T)
    assert LongPoll.disconnects == ["disconnect"]
