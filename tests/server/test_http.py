"""HttpProtocol on real sockets: the ASGI http cycle, keep-alive, pipelining,
framing, 100-continue, timeouts, errors and flow control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bayou.protocol.limits import Limits
from tests.protocol.test_http11 import OVERSIZED, REJECTED, SMALL
from tests.support.servers import RunningServer, serve
from tests.support.timeouts import scaled

Scope = dict[str, Any]

# ------------------------------------------------------------------ a raw-socket client


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw_head: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class RawClient:
    """One TCP connection; write raw bytes, read responses or everything until close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(self, *, head: bool = False, seconds: float = 5) -> Response:
        """Read one response (Content-Length, chunked, or close-delimited framing)."""
        return await asyncio.wait_for(self._read_response(head), scaled(seconds))

    async def _read_response(self, head: bool) -> Response:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        resp = Response(status, headers, raw_head=raw)
        if head or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header(b"transfer-encoding")
        cl = resp.header(b"content-length")
        if te is not None and te.lower() == b"chunked":
            body = bytearray()
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                body += await self.reader.readexactly(size)
                assert await self.reader.readexactly(2) == b"\r\n"
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line[:-2].partition(b":")
                resp.trailers.append((name.strip().lower(), value.strip()))
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = await self.reader.readexactly(int(cl))
        else:
            resp.body = await self.reader.read()
        return resp

    async def read_all(self, seconds: float = 5) -> bytes:
        """Everything until the server closes the connection (then closes our side)."""
        try:
            return await asyncio.wait_for(self.reader.read(), scaled(seconds))
        finally:
            await self.close()

    async def closed(self, seconds: float = 5) -> bool:
        """True when the server closed the connection (EOF or reset) with nothing more sent."""
        try:
            data = await asyncio.wait_for(self.reader.read(), scaled(seconds))
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            await self.close()
        return data == b""

    async def reset(self) -> None:
        """Abortive close: the server sees a connection reset, not a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    body = await read_body(receive)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-path", scope["path"].encode())],
        }
    )
    await send({"type": "http.response.body", "body": body or scope["path"].encode()})


async def stream(scope: Scope, receive: Any, send: Any) -> None:
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def echo_server() -> AsyncIterator[RunningServer]:
    async with serve(echo, lifespan="off") as srv:
        yield srv


async def connect(srv: RunningServer) -> RawClient:
    return await RawClient.connect(srv.host, srv.port)


async def still_serving(srv: RunningServer) -> None:
    client = await connect(srv)
    await client.send(b"GET /alive HTTP/1.1\r\nHost: a\r\n\r\n")
    resp = await client.read_response()
    assert resp.status == 200 and resp.body == b"/alive"
    await client.close()


# ------------------------------------------------------------------ basics


async def test_root_path_is_prefixed_once() -> None:
    """With --root-path, scope["path"] starts with root_path whether or not the proxy
    stripped it, so path minus root_path is the in-app path (ASGI, Channels' URLRouter)."""
    paths: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await echo(scope, receive, send)

    async with serve(app, lifespan="off", root_path="/mount") as srv:
        client = await connect(srv)
        for target in (b"/mount/a", b"/a", b"/mount", b"/mountain"):
            await client.send(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (await client.read_response()).status == 200
        await client.close()
    assert paths == ["/mount/a", "/mount/a", "/mount", "/mount/mountain"]


async def test_scope_is_exact() -> None:
    """The http scope has exactly the ASGI 2.5 keys with the documented values."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await echo(scope, receive, send)

    async with serve(app, lifespan="off", root_path="/mount") as srv:
        client = await connect(srv)
        await client.send(b"GET /caf%C3%A9/a%2Fb?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n")
        assert (await client.read_response()).status == 200
        await client.close()
    scope = scopes[0]
    assert set(scope) == {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
        "query_string", "root_path", "headers", "client", "server", "state", "extensions",
    }  # fmt: skip
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/mount/café/a/b"  # root_path + the path as received
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == "/mount"
    assert scope["headers"] == [(b"host", b"h"), (b"x-a", b"1")]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ("127.0.0.1", srv.port)
    assert isinstance(scope["state"], dict)
    assert scope["extensions"] == {"http.response.trailers": {}}


async def test_absolute_form_target() -> None:
    """An absolute-form target gives the path and query of the URI."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await echo(scope, receive, send)

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"GET http://h:1/p/q?z=2 HTTP/1.1\r\nHost: h:1\r\n\r\n")
        assert (await client.read_response()).status == 200
        await client.close()
    assert scopes[0]["path"] == "/p/q" and scopes[0]["query_string"] == b"z=2"


async def test_date_and_server_headers(echo_server: RunningServer) -> None:
    """Every response has a Date and the configured Server header."""
    client = await connect(echo_server)
    await client.send(GET)
    resp = await client.read_response()
    assert resp.header(b"server") == b"bayou"
    assert resp.header(b"date") is not None
    await client.close()


async def test_keep_alive_and_pipelining_in_order() -> None:
    """Pipelined requests are answered in order even when earlier ones are slower."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        n = int(scope["path"][1:])
        await read_body(receive)
        await asyncio.sleep(0.01 * (5 - n))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(n).encode()})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(6)))
        bodies = [(await client.read_response()).body for _ in range(6)]
        assert bodies == [b"0", b"1", b"2", b"3", b"4", b"5"]
        # Still alive afterwards: keep-alive.
        await client.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await client.read_response()).body == b"1"
        await client.close()


async def test_pipelining_beyond_the_limit() -> None:
    """More pipelined requests than max_pipelined_requests are all answered, in order."""
    async with serve(echo, lifespan="off", limits=Limits(max_pipelined_requests=2)) as srv:
        client = await connect(srv)
        await client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(10)))
        bodies = [(await client.read_response()).body for _ in range(10)]
        assert bodies == [b"/%d" % i for i in range(10)]
        await client.close()


async def test_chunked_request_body(echo_server: RunningServer) -> None:
    """A chunked request body reaches the app de-chunked; trailers are not headers."""
    client = await connect(echo_server)
    await client.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nX-T: 1\r\n\r\n"
    )
    resp = await client.read_response()
    assert resp.body == b"hello!"
    await client.close()


async def test_body_streamed_in_pieces() -> None:
    """A large body arrives as several http.request messages with more_body."""
    messages: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        total = sum(len(m["body"]) for m in messages)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        size = 1_000_000
        await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(10):
            await client.send(b"x" * (size // 10))
        resp = await client.read_response()
        assert resp.body == str(size).encode()
        await client.close()
    assert len(messages) > 1
    assert all(m["type"] == "http.request" for m in messages)
    assert messages[-1]["more_body"] is False


async def test_streaming_response_is_chunked() -> None:
    """A response without Content-Length streamed in pieces is chunked on HTTP/1.1."""
    async with serve(stream, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        resp = await client.read_response()
        assert resp.header(b"transfer-encoding") == b"chunked"
        assert resp.body == b"one,two,three"
        await client.close()


async def test_http10_close_delimited_and_no_continue() -> None:
    """HTTP/1.0 streaming responses are close-delimited, never chunked."""
    async with serve(stream, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        raw = await client.read_all()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"chunked" not in head.lower()
        assert body == b"one,two,three"
        await client.close()


async def test_http10_keep_alive(echo_server: RunningServer) -> None:
    """HTTP/1.0 with Connection: keep-alive and a known length keeps the connection."""
    client = await connect(echo_server)
    for _ in range(2):
        await client.send(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = await client.read_response()
        assert resp.body == b"/k" and resp.header(b"connection") == b"keep-alive"
    await client.close()


async def test_head_has_no_body() -> None:
    """HEAD responses carry the headers but never body bytes, even if the app sends some."""
    async with serve(echo, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"HEAD /abc HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
        resp = await client.read_response(head=True)
        assert resp.header(b"content-length") == b"4"
        # The next response follows immediately: no stray body bytes in between.
        resp = await client.read_response()
        assert resp.status == 200 and resp.body == b"/"
        await client.close()


async def test_connection_close_request(echo_server: RunningServer) -> None:
    """Connection: close is honoured: response has Connection: close, then the socket closes."""
    client = await connect(echo_server)
    await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
    resp = await client.read_response()
    assert resp.header(b"connection") == b"close"
    assert await client.closed()


async def test_response_trailers() -> None:
    """The http.response.trailers extension sends trailers after a chunked body."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        resp = await client.read_response()
        assert resp.body == b"data" and resp.trailers == [(b"x-sum", b"42")]
        await client.close()


# ------------------------------------------------------------------ 100-continue


async def test_expect_continue_sent_on_first_receive() -> None:
    """100 Continue is written only when the app first calls receive()."""
    may_receive = asyncio.Event()

    called = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        called.set()
        await may_receive.wait()
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        await asyncio.wait_for(called.wait(), scaled(5))
        # The request is being answered and no 100 went out (server state,
        # not a timing check on the client's buffer).
        (proto,) = http_protocols(srv)
        assert proto.cycle is not None and not proto.cycle.continue_sent
        may_receive.set()
        interim = await client.read_response()
        assert interim.status == 100
        await client.send(b"abc")
        resp = await client.read_response()
        assert resp.status == 200 and resp.body == b"abc"
        await client.close()


async def test_no_continue_when_app_answers_without_reading() -> None:
    """An app that answers without reading the body gets no 100; the connection then closes."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        resp = await client.read_response()
        assert resp.status == 413 and resp.header(b"connection") == b"close"
        assert await client.closed()


# ------------------------------------------------------------------ malformed requests


@pytest.mark.parametrize(("data", "status"), [pytest.param(d, s, id=i) for i, d, s in REJECTED])
async def test_malformed_request_rejected(
    echo_server: RunningServer, data: bytes, status: int
) -> None:
    """Each malformed request gets its documented status, the connection closes,
    and the server keeps serving other clients."""
    client = await connect(echo_server)
    await client.send(data)
    resp = await client.read_response()
    assert resp.status == status
    assert resp.header(b"connection") == b"close"
    assert await client.closed()
    await still_serving(echo_server)


@pytest.mark.parametrize(("data", "status"), [pytest.param(d, s, id=i) for i, d, s in OVERSIZED])
async def test_oversized_request_rejected(data: bytes, status: int) -> None:
    """Size limits from Limits are enforced on the wire with their status codes."""
    async with serve(echo, lifespan="off", limits=SMALL) as srv:
        client = await connect(srv)
        await client.send(data)
        resp = await client.read_response()
        assert resp.status == status
        assert await client.closed()
        await still_serving(srv)


async def test_error_after_pipelined_requests(echo_server: RunningServer) -> None:
    """Valid requests before a malformed one are answered first, then the error, then close."""
    client = await connect(echo_server)
    await client.send(GET + b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n" + b"GET / HTTP/1.1\r\n\r\n")
    assert (await client.read_response()).body == b"/"
    assert (await client.read_response()).body == b"/2"
    assert (await client.read_response()).status == 400
    assert await client.closed()


# ------------------------------------------------------------------ timeouts


async def test_slow_loris_head_is_cut_off() -> None:
    """A head trickling in byte by byte is cut off with 408 after request_head_timeout."""
    async with serve(echo, lifespan="off", request_head_timeout=scaled(0.3)) as srv:
        client = await connect(srv)
        got_408 = False
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 200:
            try:
                await client.send(bytes([byte]))
            except (ConnectionResetError, BrokenPipeError):
                break
            await asyncio.sleep(scaled(0.01))
            if client.reader.at_eof() or client.reader._buffer:
                break
        data = await client.read_all()
        got_408 = data.startswith(b"HTTP/1.1 408 ")
        assert got_408
        await still_serving(srv)


async def test_silent_connection_is_closed() -> None:
    """A connection that never sends anything is closed after request_head_timeout."""
    async with serve(echo, lifespan="off", request_head_timeout=scaled(0.2)) as srv:
        client = await connect(srv)
        assert await client.read_all() == b""


async def test_keep_alive_timeout(echo_server: RunningServer) -> None:
    """An idle keep-alive connection is closed after keep_alive_timeout."""
    async with serve(echo, lifespan="off", keep_alive_timeout=scaled(0.2)) as srv:
        client = await connect(srv)
        await client.send(GET)
        assert (await client.read_response()).status == 200
        assert await client.closed()


async def test_http_timeout_gives_503() -> None:
    """An app that does not start its response within http_timeout gets the client a 503."""
    cancelled = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(scaled(30))
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with serve(
        app, lifespan="off", http_timeout=scaled(0.2), application_close_timeout=scaled(0.1)
    ) as srv:
        client = await connect(srv)
        await client.send(GET)
        resp = await client.read_response()
        assert resp.status == 503
        assert await client.closed()
        await asyncio.wait_for(cancelled.wait(), scaled(5))


# ------------------------------------------------------------------ application errors


async def test_app_exception_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    """An exception before the response starts is logged with its traceback; client gets 500."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        with caplog.at_level(logging.ERROR, logger="bayou.server.http"):
            await client.send(GET)
            resp = await client.read_response()
        assert resp.status == 500
        await client.close()
    record = next(r for r in caplog.records if r.name == "bayou.server.http")
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


async def test_app_exception_after_start_closes() -> None:
    """An exception after the body started closes the connection (the response is cut)."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-body")

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        raw = await client.read_all()
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert not raw.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees the cut


async def test_exception_after_start_before_body_is_replaced_by_500() -> None:
    """http.response.start is not flushed until the body: a failure in between becomes 500."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("after start")

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        assert (await client.read_response()).status == 500
        await client.close()


VIOLATIONS: list[tuple[str, list[Any]]] = [
    ("body-before-start", [{"type": "http.response.body", "body": b"x"}]),
    (
        "start-twice",
        [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.start", "status": 200},
        ],
    ),
    ("status-str", [{"type": "http.response.start", "status": "200"}]),
    ("status-missing", [{"type": "http.response.start"}]),
    ("headers-str", [{"type": "http.response.start", "status": 200, "headers": [("a", "b")]}]),
    ("header-crlf", [{"type": "http.response.start", "status": 200, "headers": [(b"a", b"\r\n")]}]),
    ("unknown-type", [{"type": "http.response.start", "status": 200}, {"type": "http.nope"}]),
    ("not-a-dict", ["http.response.start"]),
    (
        "body-str",
        [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.body", "body": "x"},
        ],
    ),
    (
        "trailers-unannounced",
        [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.trailers", "headers": []},
        ],
    ),
]


@pytest.mark.parametrize("messages", [pytest.param(m, id=i) for i, m in VIOLATIONS])
async def test_app_protocol_violation(
    messages: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """ASGI misuse is logged as a protocol violation and answered with 500."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        with caplog.at_level(logging.ERROR, logger="bayou.server.http"):
            await client.send(GET)
            resp = await client.read_response()
        assert resp.status == 500
        await client.close()
    assert any("ASGI protocol violation" in r.getMessage() for r in caplog.records)


async def test_app_returns_without_response(caplog: pytest.LogCaptureFixture) -> None:
    """An app returning without responding is an error: 500 and a log line."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        return None

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        with caplog.at_level(logging.ERROR, logger="bayou.server.http"):
            await client.send(GET)
            assert (await client.read_response()).status == 500
        await client.close()
    assert any("without starting a response" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ disconnects


async def test_disconnect_after_response() -> None:
    """receive() after the response is complete returns http.disconnect."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        seen.append(await receive())

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        assert (await client.read_response()).status == 200
        await client.close()
    assert seen == [{"type": "http.disconnect"}]


async def test_disconnect_when_client_leaves_and_send_raises() -> None:
    """A long-poll app is told http.disconnect when the client goes; send() then raises OSError."""
    result: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        message = await receive()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError:
            result.set_result(message["type"] + "+oserror")
            return
        result.set_result(message["type"])

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        await asyncio.sleep(scaled(0.05))
        # A reset, not a FIN: after a FIN alone the server still answers (the
        # client may only have half-closed; see test_half_closed_client_*).
        await client.reset()
        assert await asyncio.wait_for(result, scaled(5)) == "http.disconnect+oserror"


async def test_app_ignoring_disconnect_is_cancelled() -> None:
    """An app still running application_close_timeout after the disconnect is cancelled."""
    cancelled = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        try:
            await asyncio.sleep(scaled(60))
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with serve(app, lifespan="off", application_close_timeout=scaled(0.2)) as srv:
        client = await connect(srv)
        await client.send(GET)
        await asyncio.sleep(scaled(0.05))
        await client.reset()  # gone for sure (a FIN alone may be a half-close)
        await asyncio.wait_for(cancelled.wait(), scaled(5))


# ------------------------------------------------------------------ flow control


async def test_client_not_reading_blocks_app_send() -> None:
    """A client that does not read makes the app's send() wait instead of buffering unboundedly."""
    sent = 0
    limit = 64 * 1024 * 1024
    chunk = b"x" * 65536

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal sent
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while sent < limit:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        await send({"type": "http.response.body", "body": b""})

    async with serve(app, lifespan="off", application_close_timeout=scaled(0.1)) as srv:
        sock = socket.create_connection((srv.host, srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(GET)
        previous = -1
        for _ in range(200):  # wait until the app stops making progress
            await asyncio.sleep(scaled(0.02))
            if sent == previous and sent > 0:
                break
            previous = sent
        assert 0 < sent < limit // 4
        sock.close()


async def test_app_not_reading_pauses_the_client() -> None:
    """An app that does not consume the body makes the server stop reading the socket."""
    release = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = Limits(http_read_buffer=64 * 1024)
    total = 64 * 1024 * 1024
    async with serve(app, lifespan="off", limits=limits) as srv:
        _reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
        sent = 0
        chunk = b"y" * 65536
        transport = writer.transport
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            sent += len(chunk)
            if transport.get_write_buffer_size() > 4 * 1024 * 1024:
                break  # the server stopped reading: our side is backing up
            await asyncio.sleep(0)
        assert sent < total
        release.set()
        writer.close()


# ------------------------------------------------------------------ proxy headers and shutdown


async def test_proxy_headers_from_trusted_peer() -> None:
    """X-Forwarded-* from an allowed peer set client, port and scheme."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await echo(scope, receive, send)

    async with serve(
        app, lifespan="off", proxy_headers=True, forwarded_allow_ips=["127.0.0.1"]
    ) as s:
        client = await connect(s)
        await client.send(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Port: 4433\r\n\r\n"
        )
        assert (await client.read_response()).status == 200
        await client.close()
    assert scopes[0]["client"] == ("203.0.113.7", 4433)
    assert scopes[0]["scheme"] == "https"


async def test_proxy_headers_ignored_from_untrusted_peer() -> None:
    """Proxy headers from a peer not in forwarded_allow_ips are ignored."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await echo(scope, receive, send)

    async with serve(
        app, lifespan="off", proxy_headers=True, forwarded_allow_ips=["10.0.0.1"]
    ) as s:
        client = await connect(s)
        await client.send(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\n"
            b"X-Forwarded-Proto: https\r\n\r\n"
        )
        assert (await client.read_response()).status == 200
        await client.close()
    assert scopes[0]["client"][0] == "127.0.0.1"
    assert scopes[0]["scheme"] == "http"


async def test_shutdown_finishes_in_flight_response() -> None:
    """shutdown() lets the in-flight response finish with Connection: close, then closes."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        started.set()
        await release.wait()
        await echo(scope, receive, send)

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        await asyncio.wait_for(started.wait(), scaled(5))
        for conn in list(srv.server.state.connections):
            conn.shutdown()
        release.set()
        resp = await client.read_response()
        assert resp.status == 200 and resp.header(b"connection") == b"close"
        assert await client.closed()


# ------------------------------------------------------------------ more framing cases


async def test_pipelined_bodies_in_order(echo_server: RunningServer) -> None:
    """Pipelined requests with Content-Length and chunked bodies each get their own body."""
    client = await connect(echo_server)
    await client.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nf"
    )
    bodies = [(await client.read_response()).body for _ in range(3)]
    assert bodies == [b"abc", b"de", b"f"]
    await client.close()


async def test_http10_never_gets_continue(echo_server: RunningServer) -> None:
    """An HTTP/1.0 request with Expect: 100-continue gets the final response directly."""
    client = await connect(echo_server)
    await client.send(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
    raw = await client.read_all()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"100 Continue" not in raw


async def test_unread_body_closes_connection() -> None:
    """A response finished before the request body arrived closes the connection."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"early"})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nxx")
        resp = await client.read_response()
        assert resp.body == b"early" and resp.header(b"connection") == b"close"
        assert await client.closed()


async def test_broken_chunked_body_mid_request() -> None:
    """A malformed chunk while the app reads the body: 400 and close, the app sees a disconnect."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"
        )
        await asyncio.sleep(scaled(0.05))
        await client.send(b"cX\r\n")
        resp = await client.read_response()
        assert resp.status == 400
        assert await client.closed()
    assert seen[-1] == "http.disconnect"


# ------------------------------------------------------------------ WebSocket handoff


async def ws_echo(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await echo(scope, receive, send)
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or "", "bytes": None})


async def test_websocket_upgrade_handoff() -> None:
    """An upgrade request is handed to the WebSocket side with a complete scope."""
    from websockets.asyncio.client import connect as ws_connect

    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await ws_echo(scope, receive, send)

    async with (
        serve(app, lifespan="off", root_path="/r") as srv,
        ws_connect(srv.ws_url + "/chat%20room?x=1") as ws,
    ):
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == "hi"
    scope = scopes[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/r/chat room"  # root_path prefixed; raw_path stays as received
    assert scope["raw_path"] == b"/chat%20room"
    assert scope["query_string"] == b"x=1"
    assert scope["root_path"] == "/r"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert "subprotocols" in scope


async def test_websocket_after_pipelined_request() -> None:
    """An upgrade pipelined behind an HTTP request is switched only after that response."""
    async with serve(ws_echo, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(
            GET + b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        first = await client.read_response()
        assert first.status == 200 and first.body == b"/"
        switch = await client.read_response(head=True)
        assert switch.status == 101
        await client.close()


async def test_request_trickled_byte_by_byte(echo_server: RunningServer) -> None:
    """A request arriving one byte per packet is parsed like a whole one."""
    client = await connect(echo_server)
    for (
        byte
    ) in b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n":
        await client.send(bytes([byte]))
    resp = await client.read_response()
    assert resp.status == 200 and resp.body == b"ok"
    await client.close()


async def test_access_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Each response is logged to 'bayou.access' with method, target, status and size."""
    with caplog.at_level(logging.INFO, logger="bayou.access"):
        async with serve(echo, lifespan="off", access_log=True) as srv:
            client = await connect(srv)
            await client.send(b"GET /logged?q=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await client.read_response()).status == 200
            await client.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "bayou.access"]
    assert any('"GET /logged?q=1 HTTP/1.1" 200 7' in line for line in lines), lines


async def test_total_requests_counted(echo_server: RunningServer) -> None:
    """state.total_requests counts every parsed request."""
    before = echo_server.server.state.total_requests
    client = await connect(echo_server)
    await client.send(GET + GET)
    await client.read_response()
    await client.read_response()
    await client.close()
    assert echo_server.server.state.total_requests == before + 2


async def test_concurrent_receivers_all_see_disconnect() -> None:
    """Two concurrent receive() calls both get http.disconnect; cancelling one spares the other."""
    results: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        first = asyncio.ensure_future(receive())
        second = asyncio.ensure_future(receive())
        third = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        third.cancel()
        done = await asyncio.gather(first, second)
        results.set_result([m["type"] for m in done])

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(GET)
        await asyncio.sleep(scaled(0.05))
        await client.close()
        assert await asyncio.wait_for(results, scaled(5)) == ["http.disconnect"] * 2


def test_under_uvloop() -> None:
    """The protocol works on uvloop transports (which are not asyncio.Transport subclasses)."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[bytes]:
        async with serve(stream, lifespan="off") as srv:
            client = await connect(srv)
            await client.send(GET + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
            bodies = [(await client.read_response()).body for _ in range(2)]
            await client.close()
            return bodies

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == [b"one,two,three"] * 2
    finally:
        loop.close()


# ------------------------------------------------------------------ review fixes (helper M)


def http_protocols(srv: RunningServer) -> list[Any]:
    from bayou.server.http import HttpProtocol

    return [c for c in srv.server.state.connections if isinstance(c, HttpProtocol)]


async def wait_until(condition: Any, seconds: float = 5.0) -> None:
    """Poll ``condition`` (a server state check, not a timing assertion)."""
    async with asyncio.timeout(scaled(seconds)):
        while not condition():  # noqa: ASYNC110 - server state has no event to await
            await asyncio.sleep(0.01)


async def test_pipelined_responses_respect_write_back_pressure() -> None:
    """A client that pipelines requests and never reads makes the server stop
    answering (and reading) once the transport is write-paused: the write
    buffer stays within high-water + one response, and every response still
    arrives, in order, once the client reads."""
    calls = 0
    size = 64 * 1024
    count = 200  # 12.5 MiB of responses if nothing pushed back

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        body = (b"%08d" % calls) * (size // 8)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        client.writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024
        )
        client.writer.transport.pause_reading()  # the client does not read
        await client.send(GET * count)

        def stalled() -> bool:
            protos = http_protocols(srv)
            return bool(protos) and protos[0].write_paused and protos[0].cycle is None

        await wait_until(stalled)
        proto = http_protocols(srv)[0]
        assert proto.transport.get_write_buffer_size() <= 64 * 1024 + size + 1024
        assert proto.pipeline  # the rest waits for the client
        assert calls < count
        client.writer.transport.resume_reading()
        for i in range(1, count + 1):
            resp = await client.read_response()
            assert resp.status == 200 and resp.body[:8] == b"%08d" % i
        await client.close()


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()], ids=repr)
async def test_app_base_exception_gives_500_and_server_survives(
    exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    """sys.exit() or KeyboardInterrupt in an application is logged with its
    traceback and answered 500; the server keeps serving."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/exit":
            raise exc
        await echo(scope, receive, send)

    with caplog.at_level(logging.ERROR, "bayou.server.http"):
        async with serve(app, lifespan="off") as srv:
            client = await connect(srv)
            await client.send(b"GET /exit HTTP/1.1\r\nHost: a\r\n\r\n")
            resp = await client.read_response()
            assert resp.status == 500
            await client.close()
            await still_serving(srv)
    assert "Exception in ASGI application" in caplog.text
    assert "Traceback" in caplog.text


async def test_half_closed_client_gets_its_response() -> None:
    """A client that sends a complete request and then shuts down its sending
    side (SHUT_WR) still gets the response; then the server closes."""
    release = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late answer"})

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"POST /slow HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
        client.writer.write_eof()
        await wait_until(lambda: not http_protocols(srv) or http_protocols(srv)[0].client_eof)
        release.set()
        data = await client.read_all()
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"late answer")
        await wait_until(lambda: not http_protocols(srv))


async def test_half_close_mid_body_is_a_disconnect() -> None:
    """EOF in the middle of a request body still delivers http.disconnect to an
    app waiting for more body."""
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        first = await receive()
        assert first["more_body"] is True
        got.set_result(await receive())

    async with serve(app, lifespan="off") as srv:
        client = await connect(srv)
        await client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        client.writer.write_eof()
        assert (await asyncio.wait_for(got, scaled(5)))["type"] == "http.disconnect"
        await client.close()


async def test_content_length_shortfall_in_one_message_gives_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A single body message shorter than the app's Content-Length puts nothing
    of that response on the wire: the client gets a 500 instead."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    with caplog.at_level(logging.ERROR, "bayou.server.http"):
        async with serve(app, lifespan="off") as srv:
            client = await connect(srv)
            await client.send(GET)
            resp = await client.read_response()
            assert resp.status == 500
            await client.close()
            assert resp.body == b"Internal Server Error"
    assert "shorter than its Content-Length" in caplog.text


async def test_protocol_violation_is_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ASGI misuse is logged with the traceback through the app's send() call."""

    async def misusing_app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"no start"})

    with caplog.at_level(logging.ERROR, "bayou.server.http"):
        async with serve(misusing_app, lifespan="off") as srv:
            client = await connect(srv)
            await client.send(GET)
            assert (await client.read_response()).status == 500
            await client.close()
    assert "ASGI protocol violation" in caplog.text
    assert "Traceback" in caplog.text and "misusing_app" in caplog.text
