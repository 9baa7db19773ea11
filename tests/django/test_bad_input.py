"""Bad input against consumers on the real bayou server (127.0.0.1, port 0).

Every case must end in a logged, specific error and the right close code (or
HTTP status, before the handshake completes), must leave other connections
working, and must call the consumer's ``disconnect()`` exactly once, also
when the application is slow.

Each test opens a *bystander* connection first and checks at the end that it
still echoes: one connection's failure never affects another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.urls import path
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bayou.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from bayou.layers import get_channel_layer
from bayou.protocol.limits import Limits
from bayou.routing import ProtocolTypeRouter, URLRouter
from tests.support.servers import RunningServer, serve
from tests.support.timeouts import scaled

T = scaled(5)

#: ``disconnect()`` calls, by connection label (``?label=...`` in the URL).
DISCONNECTS: dict[str, list[int]] = {}
#: Events a test sets to let a deliberately slow consumer go on, by label.
GATES: dict[str, asyncio.Event] = {}
#: Set by a consumer when it reaches its slow point, by label.
REACHED: dict[str, asyncio.Event] = {}
#: Labels of consumers cancelled inside a never-ending disconnect().
CANCELLED: list[str] = []


def _label(scope: dict[str, Any]) -> str:
    query = scope.get("query_string", b"").decode()
    return query.partition("label=")[2] or "?"


def _reached(label: str) -> asyncio.Event:
    return REACHED.setdefault(label, asyncio.Event())


def _gate(label: str) -> asyncio.Event:
    return GATES.setdefault(label, asyncio.Event())


class Recorder(AsyncWebsocketConsumer):
    """Records every disconnect() by label; misbehaves on purpose when asked.

    The URL's ``mode`` picks a misbehaviour in connect() (``raise-before-accept``,
    ``raise-after-accept``, ``never-accept``, ``stuck``, ``slow-connect``) or in
    disconnect() (``slow-disconnect``); any other mode (``echo``) accepts and sends
    ``channel:<name>``. Text commands: ``raise``, ``bogus-send``,
    ``close-then-send``, ``slow``; anything else is echoed.
    """

    async def connect(self) -> None:
        mode = self.scope["url_route"]["kwargs"]["mode"]
        label = _label(self.scope)
        if mode == "raise-before-accept":
            raise RuntimeError("connect failed before accept")
        if mode == "never-accept":
            return  # neither accept() nor close(): the server's connect timeout decides
        if mode == "stuck":
            _reached(label).set()
            await asyncio.Event().wait()  # never set: only cancellation ends this
        if mode == "slow-connect":
            _reached(label).set()
            await _gate(label).wait()
        await self.accept()
        if mode == "raise-after-accept":
            raise RuntimeError("connect failed after accept")
        # Tell the test which channel to send layer events to.
        await self.send(text_data=f"channel:{self.channel_name}")

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        label = _label(self.scope)
        if text_data == "raise":
            raise RuntimeError("receive failed")
        if text_data == "bogus-send":
            await self.base_send({"type": "websocket.bogus"})
            return
        if text_data == "close-then-send":
            await self.close(code=4001)
            await self.send(text_data="after close")
            await self.send(bytes_data=b"after close")
            return
        if text_data == "slow":
            _reached(label).set()
            await _gate(label).wait()
            await self.send(text_data="slow done")
            return
        await self.send(text_data=text_data if text_data is not None else repr(bytes_data))

    async def disconnect(self, code: int) -> None:
        label = _label(self.scope)
        DISCONNECTS.setdefault(label, []).append(code)
        if self.scope["url_route"]["kwargs"]["mode"] == "slow-disconnect":
            _reached(label + "-disconnect").set()
            try:
                await asyncio.Event().wait()  # never set: only cancellation ends this
            except asyncio.CancelledError:
                CANCELLED.append(label)
                raise


class SyncRecorder(WebsocketConsumer):
    """A sync consumer: echoes text, raises on ``raise``, records disconnect()."""

    def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        if text_data == "raise":
            raise RuntimeError("sync receive failed")
        self.send(text_data=text_data)

    def disconnect(self, code: int) -> None:
        DISCONNECTS.setdefault(_label(self.scope), []).append(code)


APP = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("sync/", SyncRecorder.as_asgi()),  # type: ignore[arg-type]
                path("<str:mode>/", Recorder.as_asgi()),  # type: ignore[arg-type]
            ]
        )
    }
)


@pytest.fixture(autouse=True)
def _reset() -> None:
    DISCONNECTS.clear()
    GATES.clear()
    REACHED.clear()
    CANCELLED.clear()


@contextlib.asynccontextmanager
async def _server(**overrides: Any) -> AsyncIterator[tuple[RunningServer, ClientConnection]]:
    """The server plus a connected bystander (label ``bystander``)."""
    async with (
        serve(APP, **overrides) as srv,
        connect(srv.ws_url + "/echo/?label=bystander") as bystander,
    ):
        greeting = await asyncio.wait_for(bystander.recv(), T)
        assert isinstance(greeting, str) and greeting.startswith("channel:")
        yield srv, bystander


async def _bystander_still_works(bystander: ClientConnection) -> None:
    await bystander.send("still here?")
    assert await asyncio.wait_for(bystander.recv(), T) == "still here?"
    assert "bystander" not in DISCONNECTS


async def _wait_for_disconnect(label: str) -> list[int]:
    """Wait (bounded) until ``disconnect()`` ran for ``label``; then give a second call a
    chance to happen, so "exactly once" is really checked."""
    async with asyncio.timeout(T):
        while label not in DISCONNECTS:  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)
    for _ in range(20):
        await asyncio.sleep(0)
    return DISCONNECTS[label]


async def _closed_code(ws: ClientConnection) -> int:
    """Read until the connection closes; the close code the server sent."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(T):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None, "the server closed without a close frame"
    return info.value.rcvd.code


# -- unknown message types --------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "logged"),
    [
        ({"type": "no.such.handler"}, "ValueError: No handler for message type no.such.handler"),
        ({"type": "_private"}, "ValueError: Malformed type in message (leading underscore)"),
        ({"text": "no type"}, "ValueError: Incoming message has no 'type' attribute"),
    ],
)
async def test_unknown_layer_event_type_closes_1011(
    event: dict[str, Any], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A channel-layer event the consumer cannot dispatch closes that connection with
    1011; the traceback names the problem; disconnect(1011) runs once."""
    async with _server() as (srv, bystander), connect(srv.ws_url + "/echo/?label=bad") as ws:
        greeting = await asyncio.wait_for(ws.recv(), T)
        assert isinstance(greeting, str)
        layer: Any = get_channel_layer()
        await layer.send(greeting.removeprefix("channel:"), event)
        assert await _closed_code(ws) == 1011
        assert await _wait_for_disconnect("bad") == [1011]
        await _bystander_still_works(bystander)
    assert logged in caplog.text
    assert "Exception in ASGI application (WebSocket /echo/)" in caplog.text


async def test_unknown_message_type_sent_by_the_app_closes_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ASGI message type the server does not know is an application error: logged
    with its name, the connection closes with 1011, disconnect(1011) runs once."""
    async with _server() as (srv, bystander), connect(srv.ws_url + "/echo/?label=bogus") as ws:
        await asyncio.wait_for(ws.recv(), T)
        await ws.send("bogus-send")
        assert await _closed_code(ws) == 1011
        assert await _wait_for_disconnect("bogus") == [1011]
        await _bystander_still_works(bystander)
    assert "'websocket.bogus' is not valid on an accepted WebSocket" in caplog.text


# -- consumers raising ------------------------------------------------------------------


async def test_raise_in_connect_before_accept_is_http_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """connect() raising before accept(): the handshake is answered with HTTP 500, the
    traceback is logged, and disconnect(1011) runs once."""
    async with _server() as (srv, bystander):
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url + "/raise-before-accept/?label=c1"):
                pass
        assert info.value.response.status_code == 500
        assert await _wait_for_disconnect("c1") == [1011]
        await _bystander_still_works(bystander)
    assert "RuntimeError: connect failed before accept" in caplog.text


async def test_raise_in_connect_after_accept_closes_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """connect() raising after accept(): close 1011, traceback logged, disconnect once."""
    async with (
        _server() as (srv, bystander),
        connect(srv.ws_url + "/raise-after-accept/?label=c2") as ws,
    ):
        assert await _closed_code(ws) == 1011
        assert await _wait_for_disconnect("c2") == [1011]
        await _bystander_still_works(bystander)
    assert "RuntimeError: connect failed after accept" in caplog.text


@pytest.mark.parametrize("route", ["/echo/", "/sync/"])
async def test_raise_in_receive_closes_1011(route: str, caplog: pytest.LogCaptureFixture) -> None:
    """receive() raising (async or sync consumer): close 1011, traceback logged,
    disconnect(1011) once."""
    async with _server() as (srv, bystander), connect(srv.ws_url + route + "?label=r") as ws:
        if route == "/echo/":
            await asyncio.wait_for(ws.recv(), T)
        await ws.send("raise")
        assert await _closed_code(ws) == 1011
        assert await _wait_for_disconnect("r") == [1011]
        await _bystander_still_works(bystander)
    assert "receive failed" in caplog.text
    assert "Exception in ASGI application" in caplog.text


# -- consumers that never accept --------------------------------------------------------


async def test_consumer_that_never_accepts_gets_504(caplog: pytest.LogCaptureFixture) -> None:
    """connect() returns without accept() or close(): after websocket_connect_timeout
    the server answers HTTP 504 and logs why; the consumer gets one disconnect()."""
    async with _server(websocket_connect_timeout=0.2) as (srv, bystander):
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url + "/never-accept/?label=n", open_timeout=T):
                pass
        assert info.value.response.status_code == 504
        assert await _wait_for_disconnect("n") == [1006]
        await _bystander_still_works(bystander)
    assert "application did not accept or deny within 0.2s" in caplog.text


async def test_consumer_stuck_in_connect_is_cancelled_and_disconnected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """connect() that never returns: HTTP 504 after the connect timeout, then the
    application is cancelled after application_close_timeout and disconnect(1011)
    still runs exactly once."""
    async with _server(websocket_connect_timeout=0.2, application_close_timeout=0.2) as (
        srv,
        bystander,
    ):
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.ws_url + "/stuck/?label=s", open_timeout=T):
                pass
        assert info.value.response.status_code == 504
        assert await _wait_for_disconnect("s") == [1011]
        await _bystander_still_works(bystander)
    assert "did not accept or deny" in caplog.text


# -- clients that go away ---------------------------------------------------------------


def _upgrade_request(port: int, target: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def test_client_gone_mid_handshake(caplog: pytest.LogCaptureFixture) -> None:
    """The client closes its socket while connect() is still running: the late
    accept() and sends are not errors, nothing is logged at ERROR, and disconnect()
    runs once (code 1006, the connection never opened)."""
    caplog.set_level(logging.DEBUG)
    async with _server() as (srv, bystander):
        _, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(_upgrade_request(srv.port, "/slow-connect/?label=h"))
        await writer.drain()
        await asyncio.wait_for(_reached("h").wait(), T)
        writer.transport.abort()  # RST, no close frame, mid-handshake
        await asyncio.sleep(0.05)  # let the server see the reset (not asserted on)
        _gate("h").set()
        assert await _wait_for_disconnect("h") == [1006]
        await _bystander_still_works(bystander)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_client_reset_while_receive_is_slow() -> None:
    """The client vanishes (TCP reset) while receive() is busy: disconnect() runs
    exactly once, after the slow handler, with 1006 (no close frame)."""
    async with _server() as (srv, bystander):
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(_upgrade_request(srv.port, "/echo/?label=slow"))
        response = b""
        async with asyncio.timeout(T):
            while b"channel:" not in response:
                response += await reader.read(4096)
        assert response.startswith(b"HTTP/1.1 101")
        # A masked text frame "slow": FIN+text, MASK+length 4, all-zero mask key.
        writer.write(b"\x81\x84\x00\x00\x00\x00slow")
        await writer.drain()
        await asyncio.wait_for(_reached("slow").wait(), T)
        # SO_LINGER 0: closing sends a RST, the abrupt way clients die.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        await asyncio.sleep(0.05)  # let the server see the reset (not asserted on)
        assert "slow" not in DISCONNECTS  # still busy in receive()
        _gate("slow").set()
        assert await _wait_for_disconnect("slow") == [1006]
        await _bystander_still_works(bystander)


async def test_normal_close_while_receive_is_slow() -> None:
    """The client closes (1000) while receive() is busy: the slow handler finishes,
    then disconnect(1000) runs exactly once."""
    async with _server() as (srv, bystander):
        ws = await connect(srv.ws_url + "/echo/?label=sr")
        await asyncio.wait_for(ws.recv(), T)
        await ws.send("slow")
        await asyncio.wait_for(_reached("sr").wait(), T)
        close = asyncio.ensure_future(ws.close(code=1000))
        _gate("sr").set()
        await asyncio.wait_for(close, T)
        assert await _wait_for_disconnect("sr") == [1000]
        await _bystander_still_works(bystander)


async def test_disconnect_that_never_returns_is_cancelled_not_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A disconnect() that hangs is cancelled by the server after
    application_close_timeout; the cancellation does not make the consumer call
    disconnect() a second time, and is not logged as an application error."""
    async with _server(application_close_timeout=0.2) as (srv, bystander):
        async with connect(srv.ws_url + "/slow-disconnect/?label=hang") as ws:
            await asyncio.wait_for(ws.recv(), T)
        await asyncio.wait_for(_reached("hang-disconnect").wait(), T)
        async with asyncio.timeout(T):
            while not CANCELLED:  # noqa: ASYNC110 - bounded by the timeout
                await asyncio.sleep(0.01)
        assert await _wait_for_disconnect("hang") == [1000]
        assert CANCELLED == ["hang"]
        await _bystander_still_works(bystander)
    assert "Exception in ASGI application" not in caplog.text


# -- a message on a closed socket -------------------------------------------------------


async def test_sends_after_close_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """close() then send(): the late frames are dropped (logged at DEBUG), the client
    sees only the close with the consumer's code, and nothing is logged as an error."""
    caplog.set_level(logging.DEBUG, logger="bayou.consumer")
    async with _server() as (srv, bystander), connect(srv.ws_url + "/echo/?label=late") as ws:
        await asyncio.wait_for(ws.recv(), T)
        await ws.send("close-then-send")
        assert await _closed_code(ws) == 4001
        assert await _wait_for_disconnect("late") == [4001]
        await _bystander_still_works(bystander)
    assert "dropped 'websocket.send' sent after the socket was closed" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_raw_app_send_after_disconnect_raises_oserror() -> None:
    """For an application without bayou's consumers, sending on a socket the client
    closed raises an ``OSError`` subclass (ASGI spec 2.4), nothing else."""
    outcome: list[BaseException | None] = []
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)
        done.set()

    async with serve(app) as srv:
        async with connect(srv.ws_url + "/") as ws:
            await ws.close()
        await asyncio.wait_for(done.wait(), T)
    assert isinstance(outcome[0], OSError)


# -- oversized payloads -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "bytes"])
async def test_oversized_message_closes_1009(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """A message over ``ws_max_message_size`` closes that connection with 1009 (the
    reason is logged at DEBUG), disconnect(1009) runs once, and the consumer never
    sees the message."""
    caplog.set_level(logging.DEBUG, logger="bayou.server")
    limits = Limits(ws_max_message_size=1024)
    async with (
        _server(limits=limits) as (srv, bystander),
        connect(srv.ws_url + "/echo/?label=big", compression=None) as ws,
    ):
        await asyncio.wait_for(ws.recv(), T)
        payload = os.urandom(1024 + 1)
        await ws.send(payload.hex()[: 1024 + 1] if kind == "text" else payload)
        assert await _closed_code(ws) == 1009
        assert await _wait_for_disconnect("big") == [1009]
        await _bystander_still_works(bystander)
    assert "WebSocket protocol error" in caplog.text


# -- protocol errors from the client ----------------------------------------------------


async def _raw_open(srv: RunningServer, label: str) -> tuple[asyncio.StreamReader, Any]:
    """A raw WebSocket connection to the echo consumer, past the consumer's greeting."""
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    writer.write(_upgrade_request(srv.port, f"/echo/?label={label}"))
    response = b""
    async with asyncio.timeout(T):
        while b"channel:" not in response:
            chunk = await reader.read(4096)
            assert chunk, "connection closed during the handshake"
            response += chunk
    assert response.startswith(b"HTTP/1.1 101")
    return reader, writer


async def _server_close_code(reader: asyncio.StreamReader) -> int:
    """Read until the server's close frame; its status code."""
    data = b""
    async with asyncio.timeout(T):
        while True:
            # Server frames are unmasked; close frames are short (one read suffices
            # once the header is in).
            while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
                chunk = await reader.read(4096)
                assert chunk, "connection closed without a close frame"
                data += chunk
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            if opcode == 0x8:
                return int.from_bytes(data[2:4], "big")
            data = data[2 + length :]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x83\x80\x00\x00\x00\x00", 1002),  # reserved opcode 0x3
        (b"\x81\x02\xc3\x28", 1002),  # unmasked client frame
        (b"\x81\x82\x00\x00\x00\x00\xc3\x28", 1007),  # text that is not UTF-8
        (b"\xc1\x81\x00\x00\x00\x00a", 1002),  # RSV1 set without an extension
    ],
    ids=["unknown-opcode", "unmasked", "invalid-utf8", "rsv1"],
)
async def test_client_protocol_error_closes_with_its_code(
    frame: bytes, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed frame from the client fails that connection with the RFC 6455 code
    (1002 protocol error, 1007 invalid data), logged at DEBUG (client errors must not
    flood the log); the consumer gets disconnect(code) once and never sees the frame."""
    caplog.set_level(logging.DEBUG, logger="bayou.server")
    async with _server() as (srv, bystander):
        reader, writer = await _raw_open(srv, "proto")
        writer.write(frame)
        assert await _server_close_code(reader) == code
        writer.close()
        assert await _wait_for_disconnect("proto") == [code]
        await _bystander_still_works(bystander)
    assert "WebSocket protocol error" in caplog.text
