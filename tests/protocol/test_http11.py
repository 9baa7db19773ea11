"""Sans-I/O HTTP/1.1 server connection: bytes in, events out (RFC 9112)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bayou.protocol.errors import LocalProtocolError, RemoteProtocolError
from bayou.protocol.http11.connection import ServerConnection
from bayou.protocol.http11.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)
from bayou.protocol.limits import Limits

MODES = ["whole", "bytewise", "trailing"]


def _chunks(data: bytes, mode: str) -> Iterator[bytes]:
    if mode == "bytewise":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        yield data


def parse(data: bytes, mode: str = "whole", limits: Limits | None = None) -> list[object]:
    """Feed ``data`` (then EOF) and collect events; a RemoteProtocolError ends the list."""
    conn = ServerConnection(limits)
    events: list[object] = []
    if mode == "trailing":
        data += b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    for chunk in [*_chunks(data, mode), b""]:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                events.append(exc)
                return events
            if event is NEED_DATA or event is PAUSED:
                break
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return events
    return events


def last_request(events: list[object]) -> Request:
    return [e for e in events if isinstance(e, Request)][-1]


def body_of(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


@pytest.mark.parametrize("mode", MODES)
def test_simple_get(mode: str) -> None:
    """A GET yields Request then EndOfMessage; names are lower-cased, values trimmed."""
    events = parse(b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  v  \r\n\r\n", mode)
    req = events[0]
    assert isinstance(req, Request)
    assert req.method == b"GET"
    assert req.target == b"/a?b=1"
    assert req.http_version == "1.1"
    assert req.headers == [(b"host", b"example.com"), (b"x-thing", b"v")]
    assert req.keep_alive is True
    assert events[1] == EndOfMessage()
    if mode == "trailing":
        assert isinstance(events[2], Request) and events[2].target == b"/next"
    else:
        assert isinstance(events[2], ConnectionClosed)


@pytest.mark.parametrize("mode", MODES)
def test_content_length_body(mode: str) -> None:
    """A Content-Length body is delivered exactly, then EndOfMessage; the next request follows."""
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", mode)
    assert body_of(events) == b"hello"
    assert EndOfMessage() in events
    if mode == "trailing":
        assert last_request(events).target == b"/next"


@pytest.mark.parametrize("mode", MODES)
def test_chunked_body_with_extensions_and_trailers(mode: str) -> None:
    """Chunked bodies are de-chunked; trailers come with EndOfMessage, never in headers."""
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value;q="x y"\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n'
    )
    events = parse(data, mode)
    req = events[0]
    assert isinstance(req, Request)
    assert (b"x-checksum", b"abc") not in req.headers
    assert body_of(events) == b"hello world"
    eom = next(e for e in events if isinstance(e, EndOfMessage))
    assert eom.trailers == ((b"x-checksum", b"abc"),)
    if mode == "trailing":
        assert last_request(events).target == b"/next"


@pytest.mark.parametrize("mode", MODES)
def test_pipelined_requests(mode: str) -> None:
    """Several requests in one stream are parsed in order."""
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3))
    events = parse(data, mode)
    targets = [e.target for e in events if isinstance(e, Request)]
    assert targets[:3] == [b"/0", b"/1", b"/2"]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_leading_empty_lines_ignored(mode: str) -> None:
    """Empty lines before a request line are skipped (RFC 9112 section 2.2)."""
    events = parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", mode)
    assert isinstance(events[0], Request)


@pytest.mark.parametrize("mode", MODES)
def test_http10_defaults(mode: str) -> None:
    """HTTP/1.0 needs no Host and is not keep-alive unless asked; the reader then stops."""
    events = parse(b"GET / HTTP/1.0\r\n\r\n", mode)
    req = events[0]
    assert isinstance(req, Request) and req.http_version == "1.0" and not req.keep_alive
    assert events[1:] == [EndOfMessage()]  # nothing after the last request is parsed
    events = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", mode)
    assert isinstance(events[0], Request) and events[0].keep_alive


@pytest.mark.parametrize("mode", MODES)
def test_connection_close_stops_reader(mode: str) -> None:
    """After a ``Connection: close`` request, following bytes are ignored."""
    events = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", mode)
    assert len(events) == 2 and isinstance(events[1], EndOfMessage)


@pytest.mark.parametrize("mode", MODES)
def test_websocket_upgrade_switches(mode: str) -> None:
    """An Upgrade: websocket request pauses the reader; later bytes are trailing_data."""
    conn = ServerConnection()
    data = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
    for chunk in _chunks(data + b"\x81\x00", mode):
        conn.receive_data(chunk)
    event = conn.next_event()
    assert isinstance(event, Request) and event.upgrade == b"websocket"
    assert conn.next_event() is PAUSED
    assert conn.trailing_data == b"\x81\x00"


def test_h2c_upgrade_is_ignored() -> None:
    """Upgrades other than websocket are not switched: the request is served normally."""
    events = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", "trailing"
    )
    assert isinstance(events[1], EndOfMessage) and isinstance(events[2], Request)


@pytest.mark.parametrize("mode", MODES)
def test_expect_continue(mode: str) -> None:
    """Expect: 100-continue is reported only for HTTP/1.1 requests with a body."""
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", mode
    )
    assert isinstance(events[0], Request) and events[0].expect_continue
    events = parse(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", mode)
    assert isinstance(events[0], Request) and not events[0].expect_continue


@pytest.mark.parametrize("mode", MODES)
def test_obs_text_preserved_verbatim(mode: str) -> None:
    """obs-text (0x80-0xFF, e.g. 0x85 NEL) is allowed by RFC 9110 and is never a line break."""
    events = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x85b: c\r\n\r\n", mode)
    req = events[0]
    assert isinstance(req, Request)
    assert req.headers[1] == (b"x", b"a\x85b: c")


def test_incomplete_head_at_eof() -> None:
    """EOF in the middle of a head is a 400; EOF between requests is ConnectionClosed."""
    events = parse(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert isinstance(events[-1], RemoteProtocolError) and events[-1].status_hint == 400
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
    assert isinstance(events[-1], RemoteProtocolError)


REJECTED = [
    # (id, bytes, status)
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        400,
    ),
    (
        "dup-cl-same",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    (
        "dup-cl-diff",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        400,
    ),
    ("cl-list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    ("cl-plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("cl-neg", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    ("cl-alpha", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc", 400),
    ("cl-empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
    (
        "cl-huge",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    ("te-gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (
        "te-chunked-gzip",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    (
        "te-gzip-chunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    ),
    (
        "te-twice",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-lf-header", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    ("bare-lf-leading", b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("bare-cr-line", b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", 400),
    ("value-vt", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n", 400),
    ("value-ff", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0cb\r\n\r\n", 400),
    ("value-1c", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1cb\r\n\r\n", 400),
    ("value-1d", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1db\r\n\r\n", 400),
    ("value-1e", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1eb\r\n\r\n", 400),
    ("value-nul", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("value-del", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
    ("name-space", b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", 400),
    ("name-sep", b"GET / HTTP/1.1\r\nHost: a\r\nX(: a\r\n\r\n", 400),
    ("name-empty", b"GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", 400),
    ("name-vt", b"GET / HTTP/1.1\r\nHost: a\r\nX\x0bY: a\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\nHost: a\r\nXYZ\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("two-hosts-10", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad-host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("bad-host-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("http09", b"GET /\r\n\r\n", 400),
    ("v12", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    ("v20", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("v09", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    ("lower-version", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ("double-space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("ctl-in-target", b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("unknown-method", b"FROB / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    ("garbage-method", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    ("star-get", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("binary", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    (
        "chunk-bad-size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
    (
        "chunk-huge-size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n",
        400,
    ),
    (
        "chunk-no-crlf",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-bare-lf",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        400,
    ),
    (
        "chunk-bare-cr",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\rX\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk-bad-ext",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;a b\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "trailer-fold",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n",
        400,
    ),
    (
        "trailer-bad",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX a\r\n\r\n",
        400,
    ),
    (
        "trailer-ctl",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\x0bb\r\n\r\n",
        400,
    ),
]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize(("data", "status"), [pytest.param(d, s, id=i) for i, d, s in REJECTED])
def test_rejected(data: bytes, status: int, mode: str) -> None:
    """Each malformed input ends in RemoteProtocolError with the documented status."""
    events = parse(data, mode)
    error = events[-1]
    assert isinstance(error, RemoteProtocolError), events
    assert error.status_hint == status, error


def test_error_is_sticky() -> None:
    """After a protocol error, next_event keeps raising and new data is ignored."""
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


SMALL = Limits(
    max_request_line=64,
    max_header_bytes=128,
    max_headers=4,
    max_trailer_bytes=32,
    max_chunk_extension=16,
)

OVERSIZED = [
    ("request-line", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    ("request-line-unterminated", b"GET /" + b"a" * 100, 414),
    ("header-bytes", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 200 + b"\r\n\r\n", 431),
    ("header-bytes-unterminated", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 200, 431),
    ("header-count", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: a\r\n" * 5 + b"\r\n", 431),
    (
        "trailer-bytes",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
        + b"a" * 40
        + b"\r\n\r\n",
        431,
    ),
    (
        "trailer-count",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        + b"X:\r\n" * 5
        + b"\r\n",
        431,
    ),
    (
        "chunk-extension",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;x="
        + b"a" * 40
        + b"\r\n",
        400,
    ),
    (
        "chunk-extension-unterminated",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;x=" + b"a" * 40,
        400,
    ),
]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize(("data", "status"), [pytest.param(d, s, id=i) for i, d, s in OVERSIZED])
def test_limits(data: bytes, status: int, mode: str) -> None:
    """Every size limit is enforced, also before the terminating CRLF arrives."""
    events = parse(data, mode, SMALL)
    error = events[-1]
    assert isinstance(error, RemoteProtocolError), events
    assert error.status_hint == status


def test_limits_not_hit_at_the_boundary() -> None:
    """Heads and trailers just within the limits are accepted."""
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: a\r\n" * 3 + b"\r\n"
    assert isinstance(parse(data, "whole", SMALL)[0], Request)


# ---------------------------------------------------------------- responses


def _request(version: str = "1.1", method: bytes = b"GET", keep_alive: bool = True) -> Request:
    return Request(method, b"/", version, [(b"host", b"a")], keep_alive=keep_alive)


def _head_fields(head: bytes) -> list[bytes]:
    return head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]


def test_response_with_known_length() -> None:
    """A complete body gets a Content-Length, a Date and the Server header, in one write."""
    conn = ServerConnection(server_name=b"bayou")
    out = conn.send_response(_request(), 200, [(b"content-type", b"text/plain")], b"hi")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"\r\n\r\nhi")
    fields = _head_fields(out)
    assert b"content-type: text/plain" in fields
    assert b"content-length: 2" in fields
    assert b"server: bayou" in fields
    assert any(
        re.fullmatch(rb"date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", f) for f in fields
    )
    assert conn.writer_state == "IDLE"


def _split(out: bytes) -> tuple[list[bytes], bytes]:
    head, _, rest = out.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[1:], rest


def test_streaming_response_is_chunked_on_11() -> None:
    """No Content-Length and a streamed body -> chunked coding on HTTP/1.1."""
    conn = ServerConnection()
    conn.start_response(_request(), 200, [])
    fields, rest = _split(conn.send_body(b"abc", more_body=True))
    assert b"transfer-encoding: chunked" in fields
    assert rest == b"3\r\nabc\r\n"
    assert conn.send_body(b"", more_body=True) == b""
    assert conn.send_body(b"") == b"0\r\n\r\n"
    assert conn.writer_state == "IDLE"


def test_head_is_deferred_until_first_body() -> None:
    """start_response writes nothing; an invalid header is reported at start time."""
    conn = ServerConnection()
    conn.start_response(_request(), 200, [(b"x", b"1")])
    assert not conn.head_written
    conn.reset_response()  # an error response may still replace it
    assert conn.writer_state == "IDLE"
    with pytest.raises(LocalProtocolError):
        conn.start_response(_request(), 200, [(b"x", "not bytes")])
    assert conn.writer_state == "IDLE"


def test_streaming_response_on_10_is_close_delimited() -> None:
    """HTTP/1.0 never gets chunked: the body is delimited by closing the connection."""
    conn = ServerConnection()
    assert conn.send_continue(_request("1.0")) == b""
    conn.start_response(_request("1.0", keep_alive=True), 200, [])
    fields, rest = _split(conn.send_body(b"abc", more_body=True))
    assert b"transfer-encoding: chunked" not in fields
    assert b"connection: close" in fields
    assert rest == b"abc"
    assert conn.send_body(b"") == b""
    assert conn.writer_state == "MUST_CLOSE"


def test_http10_keep_alive_with_length() -> None:
    """An HTTP/1.0 keep-alive request with a known length keeps the connection."""
    conn = ServerConnection()
    out = conn.send_response(_request("1.0", keep_alive=True), 200, [], b"x")
    assert b"connection: keep-alive" in _head_fields(out)
    assert conn.writer_state == "IDLE"


def test_head_response_has_no_body() -> None:
    """HEAD: headers as for GET, never body bytes."""
    conn = ServerConnection()
    out = conn.send_response(_request(method=b"HEAD"), 200, [], b"hello")
    assert out.endswith(b"\r\n\r\n")
    assert b"content-length: 5" in _head_fields(out)
    conn = ServerConnection()
    conn.start_response(_request(method=b"HEAD"), 200, [(b"content-length", b"10")])
    fields, rest = _split(conn.send_body(b"01234", more_body=True))
    assert b"content-length: 10" in fields and rest == b""
    assert conn.send_body(b"56789") == b""
    conn = ServerConnection()
    conn.start_response(_request(method=b"HEAD"), 200, [])
    fields, rest = _split(conn.send_body(b"abc", more_body=True))
    assert rest == b"" and not any(f.startswith(b"transfer-encoding") for f in fields)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    """204 and 304 never carry a body nor chunked framing."""
    conn = ServerConnection()
    out = conn.send_response(_request(), status, [], b"ignored")
    assert out.endswith(b"\r\n\r\n")
    assert b"transfer-encoding" not in out
    assert b"content-length" not in out


def test_connection_close_from_app_and_request() -> None:
    """Connection: close from the app or the request ends the connection after the response."""
    conn = ServerConnection()
    out = conn.send_response(_request(), 200, [(b"connection", b"close")], b"")
    assert b"connection: close" in _head_fields(out)
    assert conn.writer_state == "MUST_CLOSE"
    conn = ServerConnection()
    conn.send_response(_request(keep_alive=False), 200, [], b"")
    assert conn.writer_state == "MUST_CLOSE"
    conn = ServerConnection()
    out = conn.send_response(_request(), 200, [], b"", close=True)
    assert b"connection: close" in _head_fields(out)


def test_app_transfer_encoding_is_ignored() -> None:
    """The server chooses framing: an app Transfer-Encoding header is dropped."""
    conn = ServerConnection()
    out = conn.send_response(_request(), 200, [(b"transfer-encoding", b"gzip")], b"x")
    assert b"gzip" not in out and b"content-length: 1" in out


def test_response_trailers() -> None:
    """Trailers force chunked coding on HTTP/1.1 and are written after the last chunk."""
    conn = ServerConnection()
    conn.start_response(_request(), 200, [(b"content-length", b"2")], trailers=True)
    fields, rest = _split(conn.send_body(b"hi"))
    assert b"transfer-encoding: chunked" in fields
    assert not any(f.startswith(b"content-length") for f in fields)
    assert rest == b"2\r\nhi\r\n"
    assert conn.writer_state == "SEND_BODY"
    assert conn.send_trailers([(b"x-sum", b"1")]) == b"0\r\nx-sum: 1\r\n\r\n"
    assert conn.writer_state == "IDLE"


def test_response_trailers_dropped_on_http10() -> None:
    """An HTTP/1.0 response cannot carry trailers: they are dropped, the response ends."""
    conn = ServerConnection()
    conn.start_response(_request("1.0", keep_alive=True), 200, [], trailers=True)
    conn.send_body(b"hi")
    assert conn.send_trailers([(b"x-sum", b"1")]) == b""


def test_trailers_out_of_order() -> None:
    """Trailers without trailers=True, or before the body ended, are LocalProtocolError."""
    conn = ServerConnection()
    conn.start_response(_request(), 200, [], trailers=True)
    conn.send_body(b"a", more_body=True)
    with pytest.raises(LocalProtocolError):
        conn.send_trailers([])
    conn = ServerConnection()
    conn.start_response(_request(), 200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_trailers([])


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", "str")],
        [("x", b"v")],
        [(b"x y", b"v")],
        [(b"x", b"a\r\nInjected: 1")],
        [(b"x", b"a\nb")],
        [(b"x", b"a\x00b")],
        [(b"x",)],
        None,
        [(b"content-length", b"abc")],
        [(b"content-length", b"1"), (b"content-length", b"2")],
    ],
)
def test_invalid_response_headers(headers: object) -> None:
    """Bad header types, names or values (CR/LF injection) are LocalProtocolError(500)."""
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError) as info:
        conn.start_response(_request(), 200, headers)
    assert info.value.status_hint == 500


@pytest.mark.parametrize("status", [99, 101, 199, 1000, "200", True])
def test_invalid_status(status: object) -> None:
    """Informational or out-of-range statuses cannot start an ASGI response."""
    with pytest.raises(LocalProtocolError):
        ServerConnection().start_response(_request(), status, [])  # type: ignore[arg-type]


def test_content_length_mismatch() -> None:
    """Too much or too little body for the declared Content-Length is a LocalProtocolError."""
    conn = ServerConnection()
    conn.start_response(_request(), 200, [(b"content-length", b"2")])
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"abc")
    conn = ServerConnection()
    conn.start_response(_request(), 200, [(b"content-length", b"2")])
    conn.send_body(b"a", more_body=True)
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"")


def test_writer_state_violations() -> None:
    """Body before head, two heads, or body after the end are LocalProtocolError."""
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"x")
    conn.start_response(_request(), 200, [])
    with pytest.raises(LocalProtocolError):
        conn.start_response(_request(), 200, [])
    conn.send_body(b"")
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"x")


def test_continue_only_before_response() -> None:
    """100 Continue is available for HTTP/1.1 until the response starts."""
    conn = ServerConnection()
    assert conn.send_continue(_request()) == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.start_response(_request(), 200, [])
    assert conn.send_continue(_request()) == b""


def test_error_response() -> None:
    """send_error gives a complete Connection: close response with the status."""
    conn = ServerConnection()
    out = conn.send_error(431, "request header section too large")
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in out
    body = out.split(b"\r\n\r\n", 1)[1]
    assert b"content-length: %d" % len(body) in out


def test_no_server_header_when_disabled() -> None:
    """server_name=None sends no Server header."""
    out = ServerConnection(server_name=None).send_response(_request(), 200, [], b"")
    assert b"server:" not in out
