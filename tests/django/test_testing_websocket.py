"""bayou.testing.WebsocketCommunicator: a WebSocket session without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bayou.generic.websocket import AsyncJsonWebsocketConsumer, WebsocketConsumer
from bayou.testing import WebsocketCommunicator
from tests.support.timeouts import scaled


def scripted_app(
    seen: list[dict[str, Any]], script: list[dict[str, Any]], *, echo: bool = False
) -> Any:
    """A raw ASGI app: records its scope, answers connect with ``script``,
    then (with ``echo``) echoes every received frame until disconnect."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        for message in script:
            await send(message)
        while echo:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                seen.append(message)
                return
            await send({**message, "type": "websocket.send"})

    return app


async def test_scope_is_a_complete_websocket_scope() -> None:
    """The scope carries path (unquoted), raw_path, query_string, lower-cased
    byte headers and the offered subprotocols."""
    seen: list[dict[str, Any]] = []
    app = scripted_app(seen, [{"type": "websocket.accept"}])
    communicator = WebsocketCommunicator(
        app,
        "/chat/r%C3%BCm/?token=abc",
        headers=[(b"Origin", b"http://example.com"), ("cookie", "a=b")],
        subprotocols=["v2.chat", "v1.chat"],
    )
    assert await communicator.connect() == (True, None)
    scope = seen[0]
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/chat/rüm/"
    assert scope["raw_path"] == b"/chat/r%C3%BCm/"
    assert scope["query_string"] == b"token=abc"
    assert scope["root_path"] == ""
    assert scope["headers"] == [(b"origin", b"http://example.com"), (b"cookie", b"a=b")]
    assert scope["subprotocols"] == ["v2.chat", "v1.chat"]
    assert "spec_version" not in scope


async def test_spec_version_is_reported() -> None:
    """spec_version goes in scope["asgi"] (ASGI spec) and at the top level (Channels)."""
    seen: list[dict[str, Any]] = []
    communicator = WebsocketCommunicator(
        scripted_app(seen, [{"type": "websocket.accept"}]), "/", spec_version="2.3"
    )
    await communicator.connect()
    assert seen[0]["asgi"]["spec_version"] == "2.3"
    assert seen[0]["spec_version"] == "2.3"


def test_path_must_be_str() -> None:
    """A bytes path is rejected with TypeError, as in Channels."""
    with pytest.raises(TypeError, match="Expected str"):
        WebsocketCommunicator(scripted_app([], []), b"/")  # type: ignore[arg-type]


async def test_accept_returns_subprotocol_and_headers() -> None:
    """connect() returns (True, subprotocol) and keeps the accept headers."""
    accept = {
        "type": "websocket.accept",
        "subprotocol": "v1.chat",
        "headers": [(b"x-server", b"bayou")],
    }
    communicator = WebsocketCommunicator(scripted_app([], [accept]), "/")
    assert await communicator.connect() == (True, "v1.chat")
    assert communicator.response_headers == [(b"x-server", b"bayou")]


async def test_close_returns_code() -> None:
    """A close before accept gives (False, code); no code means 1000."""
    with_code = WebsocketCommunicator(
        scripted_app([], [{"type": "websocket.close", "code": 4003}]), "/"
    )
    assert await with_code.connect() == (False, 4003)
    without_code = WebsocketCommunicator(scripted_app([], [{"type": "websocket.close"}]), "/")
    assert await without_code.connect() == (False, 1000)
    assert without_code.response_headers is None


async def test_send_and_receive_text_bytes_and_json() -> None:
    """Text comes back as str, bytes as bytes, JSON decoded; empty messages are valid."""
    seen: list[dict[str, Any]] = []
    communicator = WebsocketCommunicator(
        scripted_app(seen, [{"type": "websocket.accept"}], echo=True), "/"
    )
    await communicator.connect()
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.send_to(bytes_data=b"\x00\xff")
    assert await communicator.receive_from() == b"\x00\xff"
    await communicator.send_json_to({"n": [1, 2]})
    assert await communicator.receive_json_from() == {"n": [1, 2]}
    await communicator.send_to(text_data="")
    assert await communicator.receive_from() == ""
    await communicator.disconnect(code=4000)
    assert seen[-1] == {"type": "websocket.disconnect", "code": 4000}


async def test_receive_from_accepts_none_for_the_other_key() -> None:
    """A websocket.send with ``"bytes": None`` next to the text is a text message (ASGI spec)."""
    script = [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": "t", "bytes": None},
        {"type": "websocket.send", "text": None, "bytes": b"b"},
    ]
    communicator = WebsocketCommunicator(scripted_app([], script), "/")
    await communicator.connect()
    assert await communicator.receive_from() == "t"
    assert await communicator.receive_from() == b"b"


async def test_send_to_argument_checks() -> None:
    """send_to needs exactly one of text_data/bytes_data, of the right type."""
    communicator = WebsocketCommunicator(scripted_app([], [{"type": "websocket.accept"}]), "/")
    await communicator.connect()
    with pytest.raises(AssertionError, match="exactly one of text_data or bytes_data"):
        await communicator.send_to()
    with pytest.raises(AssertionError, match="exactly one of text_data or bytes_data"):
        await communicator.send_to(text_data="a", bytes_data=b"b")
    with pytest.raises(AssertionError, match="The text_data argument must be a str"):
        await communicator.send_to(text_data=b"a")  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="The bytes_data argument must be bytes"):
        await communicator.send_to(bytes_data="b")  # type: ignore[arg-type]


async def test_receive_from_reports_the_wrong_type() -> None:
    """A close where a message was expected fails with the Channels assertion message."""
    script = [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1000}]
    communicator = WebsocketCommunicator(scripted_app([], script), "/")
    await communicator.connect()
    with pytest.raises(AssertionError) as info:
        await communicator.receive_from()
    assert str(info.value) == "Expected type 'websocket.send', but was 'websocket.close'"


async def test_receive_json_from_needs_text() -> None:
    """A binary frame is not JSON."""
    script = [{"type": "websocket.accept"}, {"type": "websocket.send", "bytes": b"{}"}]
    communicator = WebsocketCommunicator(scripted_app([], script), "/")
    await communicator.connect()
    with pytest.raises(AssertionError, match="JSON data is not a text frame"):
        await communicator.receive_json_from()


async def test_receive_nothing_after_connect() -> None:
    """receive_nothing is True while the application stays quiet."""
    communicator = WebsocketCommunicator(
        scripted_app([], [{"type": "websocket.accept"}], echo=True), "/"
    )
    await communicator.connect()
    assert await communicator.receive_nothing() is True
    await communicator.disconnect()


async def test_consumer_exception_surfaces_with_traceback() -> None:
    """An exception in a consumer handler is raised in the test itself."""

    class Broken(WebsocketConsumer):
        def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            raise LookupError(f"cannot handle {text_data}")

    communicator = WebsocketCommunicator(Broken.as_asgi(), "/")
    assert await communicator.connect() == (True, None)
    await communicator.send_to(text_data="this")
    with pytest.raises(LookupError, match="cannot handle this"):
        await asyncio.wait_for(communicator.receive_from(timeout=3600), scaled(30))


async def test_json_consumer_round_trip() -> None:
    """The tutorial pattern: a JSON consumer echoes with the chosen subprotocol."""

    class Echo(AsyncJsonWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept(self.scope["subprotocols"][0])

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await self.send_json({"echo": content, "path": self.scope["path"]})

    communicator = WebsocketCommunicator(Echo.as_asgi(), "/ws/echo/", subprotocols=["json"])
    assert await communicator.connect() == (True, "json")
    await communicator.send_json_to({"a": 1})
    assert await communicator.receive_json_from() == {"echo": {"a": 1}, "path": "/ws/echo/"}
    await communicator.disconnect()
