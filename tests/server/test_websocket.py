"""WebSocket server behaviour on real sockets (127.0.0.1, port 0).

Clients: the ``websockets`` library, and raw sockets where the bytes on the
wire are the point (invalid frames, silent peers, peers that never read).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bayou.protocol.limits import Limits
from bayou.protocol.websocket.frames import unmask
from bayou.server.websocket import ClientDisconnected, WebSocketProtocol
from tests.support.servers import RunningServer, serve
from tests.support.timeouts import scaled

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send(
                {"type": "websocket.send", **{k: v for k, v in message.items() if k != "type"}}
            )
        else:
            return


class Recorder:
    """An app that accepts, records every received message and runs ``script``."""

    def __init__(self, script: Callable[[Receive, Send], Awaitable[None]] | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.scope: Scope = {}
        self.done = asyncio.Event()
        self.errors: list[BaseException] = []
        self.script = script

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        self.scope = scope

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            self.messages.append(message)
            return message

        try:
            if self.script is not None:
                await self.script(recording_receive, send)
            else:
                assert (await recording_receive())["type"] == "websocket.connect"
                await send({"type": "websocket.accept"})
                while (await recording_receive())["type"] != "websocket.disconnect":
                    pass
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            self.done.set()


def ws_protocols(srv: RunningServer) -> list[WebSocketProtocol]:
    return [c for c in srv.server.state.connections if isinstance(c, WebSocketProtocol)]


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``condition`` (a state check, not a timing assertion)."""
    async with asyncio.timeout(scaled(seconds)):
        while not condition():  # noqa: ASYNC110 - server state has no event to await
            await asyncio.sleep(0.01)


# -- raw socket client ------------------------------------------------------------


class RawWs:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, srv: RunningServer, extra: bytes = b"", path: str = "/ws"
    ) -> tuple[RawWs, bytes]:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            + b"Sec-WebSocket-Key: "
            + key
            + b"\r\n"
            + b"Sec-WebSocket-Version: 13\r\n"
            + extra
            + b"\r\n"
        )
        async with asyncio.timeout(scaled(5)):
            head = await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer), head

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> None:
        mask = os.urandom(4)
        n = len(payload)
        first = bytes([(0x80 if fin else 0) | rsv | opcode])
        if n < 126:
            head = first + bytes([0x80 | n])
        elif n < 65536:
            head = first + bytes([0xFE]) + n.to_bytes(2, "big")
        else:
            head = first + bytes([0xFF]) + n.to_bytes(8, "big")
        self.writer.write(head + mask + unmask(payload, mask))

    async def read_frame(self) -> tuple[int, bytes]:
        async with asyncio.timeout(scaled(5)):
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            return b0 & 0x0F, await self.reader.readexactly(n)

    async def read_close(self) -> int:
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 8:
                return int.from_bytes(payload[:2], "big")

    async def read_eof(self) -> bytes:
        async with asyncio.timeout(scaled(5)):
            return await self.reader.read()

    def close(self) -> None:
        self.writer.close()


# -- tests -------------------------------------------------------------------------


async def test_echo_text_and_binary() -> None:
    """Text comes back as text, binary as binary, in order."""
    async with serve(echo, ping_interval=None) as srv, websockets.connect(srv.ws_url + "/e") as ws:
        await ws.send("héllo")
        await ws.send(b"\x00\x01")
        await ws.send("x" * 100_000)
        assert await ws.recv() == "héllo"
        assert await ws.recv() == b"\x00\x01"
        assert await ws.recv() == "x" * 100_000


async def test_scope_and_subprotocol_negotiation() -> None:
    """The scope lists the offered subprotocols; the app's choice reaches the client."""

    async def script(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "v2", "headers": [(b"x-app", b"1")]})
        await receive()

    app = Recorder(script)
    async with serve(app) as srv:
        async with websockets.connect(srv.ws_url + "/p?q=1", subprotocols=["v1", "v2"]) as ws:
            assert ws.subprotocol == "v2"
            assert ws.response.headers["x-app"] == "1"
        await asyncio.wait_for(app.done.wait(), scaled(5))
    assert app.scope["subprotocols"] == ["v1", "v2"]
    assert app.scope["path"] == "/p" and app.scope["query_string"] == b"q=1"


async def test_fragmented_message_is_reassembled() -> None:
    """A message sent in fragments reaches the app whole."""
    async with serve(echo) as srv, websockets.connect(srv.ws_url) as ws:
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"


async def test_ping_is_answered() -> None:
    """The server answers client pings itself."""
    async with serve(echo) as srv, websockets.connect(srv.ws_url) as ws:
        pong = await ws.ping(b"abc")
        await asyncio.wait_for(pong, scaled(5))


async def test_close_codes_both_ways() -> None:
    """The client's close code/reason reach the app; the app's reach the client."""
    app = Recorder()
    async with serve(app) as srv:
        async with websockets.connect(srv.ws_url) as ws:
            await ws.close(4001, "bye")
        await asyncio.wait_for(app.done.wait(), scaled(5))
        assert app.messages[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}

        async def closer(receive: Receive, send: Send) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4002, "reason": "done"})
            assert (await receive())["type"] == "websocket.disconnect"

    app2 = Recorder(closer)
    async with serve(app2) as srv2, websockets.connect(srv2.ws_url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "done")


async def test_send_after_disconnect_raises_oserror() -> None:
    """send() on a closed WebSocket raises ClientDisconnected (an OSError); close() is a no-op."""
    raised: list[BaseException] = []

    async def script(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        await send({"type": "websocket.close"})
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            raised.append(exc)

    app = Recorder(script)
    async with serve(app) as srv:
        async with websockets.connect(srv.ws_url):
            pass
        await asyncio.wait_for(app.done.wait(), scaled(5))
    assert len(raised) == 1 and isinstance(raised[0], ClientDisconnected)


async def test_oversized_message_closes_1009() -> None:
    """A message above ws_max_message_size closes with 1009; the app sees 1009."""
    app = Recorder()
    limits = Limits(ws_max_message_size=1000, ws_max_frame_size=1000)
    async with serve(app, limits=limits) as srv:
        async with websockets.connect(srv.ws_url, compression=None) as ws:
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await asyncio.wait_for(app.done.wait(), scaled(5))
    assert app.messages[-1]["code"] == 1009


async def test_invalid_utf8_closes_1007() -> None:
    """A text frame with invalid UTF-8 gets close 1007 and then EOF."""
    async with serve(echo) as srv:
        ws, head = await RawWs.connect(srv)
        assert head.startswith(b"HTTP/1.1 101 ")
        ws.send_frame(1, b"\xce\xba\xed\xa0\x80")
        assert await ws.read_close() == 1007
        assert await ws.read_eof() == b""
        ws.close()


async def test_unmasked_frame_closes_1002() -> None:
    """Client frames must be masked: an unmasked one gets close 1002."""
    async with serve(echo) as srv:
        ws, _ = await RawWs.connect(srv)
        ws.writer.write(b"\x81\x02hi")
        assert await ws.read_close() == 1002
        ws.close()


async def test_frames_pipelined_with_the_handshake() -> None:
    """Frames sent right behind the upgrade request are delivered after accept."""
    async with serve(echo) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        mask = b"\x01\x02\x03\x04"
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + b"\x81\x82"
            + mask
            + unmask(b"hi", mask)
        )
        ws = RawWs(reader, writer)
        async with asyncio.timeout(scaled(5)):
            await reader.readuntil(b"\r\n\r\n")
        assert await ws.read_frame() == (1, b"hi")
        ws.close()


async def test_deflate_negotiated_and_working() -> None:
    """permessage-deflate is negotiated by default and messages round-trip compressed."""
    async with serve(echo) as srv, websockets.connect(srv.ws_url) as ws:
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        for _ in range(3):
            await ws.send("compress me " * 200)
            assert await ws.recv() == "compress me " * 200
        await ws.send(b"\x00" * 50_000)
        assert await ws.recv() == b"\x00" * 50_000


async def test_deflate_can_be_disabled() -> None:
    """With websocket_per_message_deflate=False no extension is negotiated."""
    async with (
        serve(echo, websocket_per_message_deflate=False) as srv,
        websockets.connect(srv.ws_url) as ws,
    ):
        assert "sec-websocket-extensions" not in ws.response.headers
        await ws.send("plain")
        assert await ws.recv() == "plain"


async def test_deflate_bomb_closes_1009() -> None:
    """A compressed message inflating past the limit is cut off with 1009."""
    limits = Limits(ws_max_message_size=10_000, ws_max_frame_size=10_000)
    async with serve(echo, limits=limits) as srv:
        ws, head = await RawWs.connect(srv, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert b"permessage-deflate" in head
        import zlib

        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = (c.compress(b"\x00" * 5_000_000) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        ws.send_frame(2, bomb, rsv=0x40)
        assert await ws.read_close() == 1009
        ws.close()


async def test_close_before_accept_is_403() -> None:
    """websocket.close before accept denies the handshake with HTTP 403."""

    async def deny(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async with serve(Recorder(deny)) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(srv.ws_url):
                pass
        assert info.value.response.status_code == 403


async def test_custom_denial_response() -> None:
    """The websocket.http.response extension sends the app's own HTTP response."""

    async def deny(receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})

    async with serve(Recorder(deny)) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(srv.ws_url):
                pass
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["x-why"] == "token"
        assert response.body == b"no entry"


async def test_app_exception_before_accept_is_500(caplog: pytest.LogCaptureFixture) -> None:
    """An app that raises during the handshake gets HTTP 500 and a logged traceback."""

    async def boom(receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(boom)) as srv:
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(srv.ws_url):
                    pass
            assert info.value.response.status_code == 500
    assert "Exception in ASGI application" in caplog.text


async def test_app_exception_after_accept_is_1011(caplog: pytest.LogCaptureFixture) -> None:
    """An app that raises after accepting closes the WebSocket with 1011."""

    async def boom(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(boom)) as srv, websockets.connect(srv.ws_url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011


async def test_spec_violation_is_logged_and_500(caplog: pytest.LogCaptureFixture) -> None:
    """Sending data before accepting is an ASGI error: logged clearly, HTTP 500."""

    async def wrong(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.send", "text": "too early"})

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(wrong)) as srv:
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(srv.ws_url):
                    pass
            assert info.value.response.status_code == 500
    assert "expected websocket.accept or websocket.close" in caplog.text


async def test_app_returning_without_accept_is_500() -> None:
    """An app that returns without answering the handshake gets 500."""

    async def silent(receive: Receive, send: Send) -> None:
        await receive()

    async with serve(Recorder(silent)) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(srv.ws_url):
                pass
        assert info.value.response.status_code == 500


async def test_connect_timeout() -> None:
    """An app that neither accepts nor denies in time gets the handshake refused (504)."""

    async def slow(receive: Receive, send: Send) -> None:
        await receive()
        await receive()  # the disconnect that follows the refusal

    app = Recorder(slow)
    async with serve(app, websocket_connect_timeout=0.2) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(srv.ws_url, open_timeout=scaled(5)):
                pass
        assert info.value.response.status_code == 504
        await asyncio.wait_for(app.done.wait(), scaled(5))
    assert app.messages[-1]["type"] == "websocket.disconnect"


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        (b"Sec-WebSocket-Version: 8\r\n", 426),
        (b"Sec-WebSocket-Version: 13\r\n", 400),
    ],
)
async def test_invalid_handshake_status(extra: bytes, status: int) -> None:
    """A bad version gets 426 with Sec-WebSocket-Version: 13; a missing key gets 400."""
    async with serve(echo) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        key = b"" if status == 400 else b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        writer.write(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + key
            + extra
            + b"\r\n"
        )
        async with asyncio.timeout(scaled(5)):
            response = await reader.read()
        writer.close()
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    if status == 426:
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in response


async def test_keepalive_closes_silent_peer() -> None:
    """A peer that never answers pings is disconnected; the app sees code 1011."""
    app = Recorder()
    async with serve(app, ping_interval=0.05, ping_timeout=0.1) as srv:
        ws, _ = await RawWs.connect(srv)
        opcode, _payload = await ws.read_frame()
        assert opcode == 9  # the server's ping, never answered
        async with asyncio.timeout(scaled(5)):
            while await ws.reader.read(65536):
                pass
        await asyncio.wait_for(app.done.wait(), scaled(5))
        ws.close()
    assert app.messages[-1] == {
        "type": "websocket.disconnect",
        "code": 1011,
        "reason": "keepalive ping timeout",
    }


async def test_keepalive_keeps_answering_peer() -> None:
    """A peer that answers pings stays connected through several intervals."""
    async with (
        serve(echo, ping_interval=0.02, ping_timeout=scaled(2)) as srv,
        websockets.connect(srv.ws_url) as ws,
    ):
        for _ in range(5):
            await asyncio.sleep(0.03)
            await ws.send("still here")
            assert await ws.recv() == "still here"


async def test_client_that_never_reads_blocks_sender() -> None:
    """With a peer that does not read, send() waits: the server buffer stays bounded."""
    sent = 0
    chunk = b"x" * 65536

    async def flood(receive: Receive, send: Send) -> None:
        nonlocal sent
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(2000):  # 128 MiB if nothing pushed back
            await send({"type": "websocket.send", "bytes": chunk})
            sent += 1

    limits = Limits(ws_send_high_water=64 * 1024)
    async with serve(Recorder(flood), limits=limits, websocket_per_message_deflate=False) as srv:
        ws, _ = await RawWs.connect(srv)
        await wait_for(lambda: any(p._drain_waiters for p in ws_protocols(srv)))
        proto = ws_protocols(srv)[0]
        assert proto.transport is not None
        assert proto.transport.get_write_buffer_size() <= 64 * 1024 + len(chunk) + 16
        assert sent < 2000
        ws.close()


async def test_incoming_queue_pauses_reading() -> None:
    """When the app does not receive, reading pauses at ws_incoming_queue messages."""
    release = asyncio.Event()

    async def lazy(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()

    limits = Limits(ws_incoming_queue=4)
    async with serve(Recorder(lazy), limits=limits) as srv:
        ws, _ = await RawWs.connect(srv)
        for _ in range(2000):  # 2 MiB: more than the socket buffers hold
            ws.send_frame(2, b"m" * 1024)
        await wait_for(lambda: any(p._paused for p in ws_protocols(srv)))
        proto = ws_protocols(srv)[0]
        # The limit is checked per read: one read (asyncio: up to 256 KiB) may land on top.
        assert len(proto._queue) <= 4 + 256 * 1024 // 1024 + 1
        release.set()
        ws.close()


async def test_shutdown_closes_1001() -> None:
    """Server shutdown closes open WebSockets with 1001 (going away)."""
    app = Recorder()
    async with serve(app) as srv, websockets.connect(srv.ws_url) as ws:
        await wait_for(lambda: bool(ws_protocols(srv)))
        for proto in ws_protocols(srv):
            proto.shutdown()
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert app.messages[-1]["type"] == "websocket.disconnect"


async def test_access_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Connect and disconnect are access-logged daphne-style."""
    with caplog.at_level(logging.INFO, "bayou.access"):
        async with serve(echo, access_log=True) as srv:
            async with websockets.connect(srv.ws_url + "/logged") as ws:
                await ws.send("x")
                await ws.recv()
            await wait_for(lambda: "WSDISCONNECT /logged" in caplog.text)
    assert "WSCONNECT /logged" in caplog.text


async def test_lifetime_limit_closes_1000() -> None:
    """websocket_timeout ends a connection with close 1000."""
    async with (
        serve(Recorder(), websocket_timeout=0.1) as srv,
        websockets.connect(srv.ws_url) as ws,
    ):
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), scaled(5))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def test_app_ignoring_disconnect_is_cancelled() -> None:
    """An app still running application_close_timeout after the disconnect is cancelled."""
    cancelled = asyncio.Event()

    async def stubborn(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with serve(Recorder(stubborn), application_close_timeout=0.05) as srv:
        async with websockets.connect(srv.ws_url):
            pass
        await asyncio.wait_for(cancelled.wait(), scaled(5))


# -- review fixes (helper M) -------------------------------------------------------


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


async def still_serving(srv: RunningServer) -> None:
    async with websockets.connect(srv.ws_url) as ws:
        await ws.send("still")
        assert await ws.recv() == "still"


def accept_with(**fields: Any) -> Callable[[Receive, Send], Awaitable[None]]:
    async def script(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept", **fields})
        await receive()

    return script


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", b"1\r\nSet-Cookie: evil=1")],
        [(b"x a", b"1")],
        [("x-a", "1")],
        [(b"x-a", b"1\n")],
    ],
    ids=["crlf", "space-name", "str", "lf"],
)
async def test_accept_headers_are_validated(
    headers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Invalid websocket.accept headers (CR/LF injection, bad names, str) are a
    logged ASGI misuse answered with HTTP 500; nothing of them reaches the wire."""
    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(accept_with(headers=headers))) as srv:
            ws, head = await RawWs.connect(srv)
            assert status_of(head) == 500
            rest = await ws.read_eof()
            ws.close()
            assert b"evil" not in head + rest
    assert "websocket.accept" in caplog.text


async def test_denial_headers_are_validated(caplog: pytest.LogCaptureFixture) -> None:
    """A websocket.http.response.start header value with CR LF is a misuse: 500,
    and no second response is injected."""

    async def deny(receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"x-a", b"1\r\n\r\nHTTP/1.1 200 OK")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b""})

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(deny)) as srv:
            ws, head = await RawWs.connect(srv)
            rest = await ws.read_eof()
            ws.close()
    assert status_of(head) == 500
    assert b"200 OK" not in head + rest
    assert "websocket.http.response.start" in caplog.text


@pytest.mark.parametrize("status", [101, 100, 199, 600, "200"])
async def test_denial_status_must_be_final(status: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A denial status outside 200-599 (1xx is not a final response) is a misuse: 500."""

    async def deny(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": status, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b""})

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(deny)) as srv:
            ws, head = await RawWs.connect(srv)
            ws.close()
    assert status_of(head) == 500
    assert "200-599" in caplog.text


@pytest.mark.parametrize(
    ("exc", "accept"),
    [(SystemExit(3), True), (KeyboardInterrupt(), True), (SystemExit(4), False)],
    ids=["exit-after-accept", "interrupt-after-accept", "exit-before-accept"],
)
async def test_app_base_exception_does_not_stop_the_server(
    exc: BaseException, accept: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """sys.exit() / KeyboardInterrupt in a WebSocket app is logged with its
    traceback and answered 1011 (500 before accept); the server keeps serving."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/exit":
            await receive()
            if accept:
                await send({"type": "websocket.accept"})
            raise exc
        await echo(scope, receive, send)

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(app) as srv:
            ws, head = await RawWs.connect(srv, path="/exit")
            if accept:
                assert status_of(head) == 101
                assert await ws.read_close() == 1011
            else:
                assert status_of(head) == 500
            ws.close()
            await still_serving(srv)
    assert "Exception in ASGI application" in caplog.text
    assert "Traceback" in caplog.text


async def test_incoming_bytes_bound_pauses_reading() -> None:
    """Reading pauses once ws_incoming_queue_bytes of payload wait for an app
    that does not receive, even when few messages are queued."""
    release = asyncio.Event()

    async def lazy(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()

    limits = Limits(ws_incoming_queue=10_000, ws_incoming_queue_bytes=64 * 1024)
    async with serve(Recorder(lazy), limits=limits, websocket_per_message_deflate=False) as srv:
        ws, _ = await RawWs.connect(srv)
        for _ in range(400):  # 25 MiB: more than the socket buffers hold
            ws.send_frame(2, b"m" * 65536)
            if ws.writer.transport.get_write_buffer_size() > 8 * 1024 * 1024:
                break
            await asyncio.sleep(0)
        await wait_for(lambda: any(p._paused for p in ws_protocols(srv)))
        proto = ws_protocols(srv)[0]
        # Checked per read: one read (up to 256 KiB) may land on top.
        assert proto._queue_bytes <= 64 * 1024 + 256 * 1024 + 65536
        assert len(proto._queue) < 100
        release.set()
        ws.close()


async def test_early_data_limit_is_a_named_limit() -> None:
    """Bytes sent behind the upgrade before the app accepts pause reading at
    Limits.ws_early_data; they are delivered once the app accepts."""
    may_accept = asyncio.Event()

    async def late(receive: Receive, send: Send) -> None:
        await receive()
        await may_accept.wait()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    limits = Limits(ws_early_data=1024)
    app = Recorder(late)
    async with serve(app, limits=limits, websocket_per_message_deflate=False) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        ws = RawWs(reader, writer)
        for _ in range(8):
            ws.send_frame(2, b"e" * 512)
        await wait_for(lambda: any(p._paused for p in ws_protocols(srv)))
        may_accept.set()
        async with asyncio.timeout(scaled(5)):
            await reader.readuntil(b"\r\n\r\n")
        await wait_for(lambda: len(app.messages) >= 9)
        assert [m.get("bytes") for m in app.messages[1:9]] == [b"e" * 512] * 8
        ws.close()


async def test_unoffered_subprotocol_is_a_misuse(caplog: pytest.LogCaptureFixture) -> None:
    """Accepting with a subprotocol the client did not offer is an ASGI misuse:
    HTTP 500, no Sec-WebSocket-Protocol on the wire."""
    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(accept_with(subprotocol="notoffered"))) as srv:
            ws, head = await RawWs.connect(srv, extra=b"Sec-WebSocket-Protocol: a, b\r\n")
            ws.close()
    assert status_of(head) == 500
    assert b"notoffered" not in head
    assert "was not offered" in caplog.text


@pytest.mark.parametrize("code", [1005, 1006, 999, 2000, 5000, "abc", True])
async def test_invalid_app_close_code_sends_1011(
    code: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """websocket.close with a code that may not go on the wire is a misuse:
    the peer gets a 1011 close frame instead."""

    async def closer(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code})

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(closer)) as srv:
            ws, head = await RawWs.connect(srv)
            assert status_of(head) == 101
            assert await ws.read_close() == 1011
            ws.close()
    assert "websocket.close 'code'" in caplog.text


async def test_send_with_text_and_bytes_is_a_misuse(caplog: pytest.LogCaptureFixture) -> None:
    """websocket.send with both 'text' and 'bytes' is a misuse: close 1011, nothing sent."""

    async def both(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "t", "bytes": b"b"})

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(both)) as srv:
            ws, _ = await RawWs.connect(srv)
            assert await ws.read_frame() == (8, (1011).to_bytes(2, "big"))
            ws.close()
    assert "exactly one of 'text'" in caplog.text


async def test_handshake_responses_carry_date() -> None:
    """The 101, a denial (403) and a refused handshake (400) all carry a Date header."""
    async with serve(echo) as srv:
        ws, head = await RawWs.connect(srv)
        assert b"\r\ndate: " in head.lower()
        ws.close()

        async def deny(receive: Receive, send: Send) -> None:
            await receive()
            await send({"type": "websocket.close"})

    async with serve(Recorder(deny)) as srv:
        ws, head = await RawWs.connect(srv)
        assert status_of(head) == 403 and b"\r\ndate: " in head.lower()
        ws.close()
        ws, head = await RawWs.connect(
            srv, extra=b"Sec-WebSocket-Protocol: ,\r\nSec-WebSocket-Extensions: bad ext\r\n"
        )
        assert status_of(head) == 400 and b"\r\ndate: " in head.lower()
        ws.close()


async def test_upgrade_with_body_is_rejected() -> None:
    """An upgrade request with a body gets 400: its bytes are not read as frames."""
    async with serve(echo) as srv:
        ws, head = await RawWs.connect(srv, extra=b"Content-Length: 5\r\n")
        ws.writer.write(b"hello")
        assert status_of(head) == 400
        ws.close()


async def test_misuse_is_logged_with_the_app_stack(caplog: pytest.LogCaptureFixture) -> None:
    """An ASGI misuse log line carries the stack through the app's send() call."""

    async def wrong_place(receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.send", "text": "too early"})

    with caplog.at_level(logging.ERROR, "bayou.server"):
        async with serve(Recorder(wrong_place)) as srv:
            ws, head = await RawWs.connect(srv)
            ws.close()
    assert status_of(head) == 500
    assert "Traceback" in caplog.text
    assert "wrong_place" in caplog.text


async def test_no_101_when_the_connection_cannot_be_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If building the WebSocket connection fails, the client gets a 500 and
    never a 101 followed by a 500."""
    import bayou.server.websocket as ws_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot build")

    monkeypatch.setattr(ws_module, "WebSocketConnection", broken)
    async with serve(Recorder(accept_with())) as srv:
        ws, head = await RawWs.connect(srv)
        rest = await ws.read_eof()
        ws.close()
    assert status_of(head) == 500
    assert b"101" not in head + rest


async def test_handoff_during_shutdown_is_shut_down() -> None:
    """A WebSocket handed off after server shutdown began is told to shut down
    at once (503 while still handshaking) instead of waiting for the abort."""
    app = Recorder(accept_with())
    async with serve(app) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        await asyncio.sleep(0)  # let the server accept the connection
        await wait_for(lambda: bool(srv.server.state.connections))
        srv.server.state.shutting_down = True
        try:
            key = base64.b64encode(os.urandom(16))
            writer.write(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            async with asyncio.timeout(scaled(5)):
                head = await reader.readuntil(b"\r\n\r\n")
            assert status_of(head) == 503
        finally:
            srv.server.state.shutting_down = False
            writer.close()
