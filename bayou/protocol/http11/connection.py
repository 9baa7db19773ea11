"""Sans-I/O HTTP/1.1 server connection (RFC 9112), after h11.

    conn = ServerConnection(limits, server_name=b"bayou")
    conn.receive_data(bytes_from_socket)        # b"" means EOF
    event = conn.next_event()  # Request, Data, EndOfMessage, ConnectionClosed, NEED_DATA, PAUSED
    transport.write(conn.send_response(request, 200, headers, body))

This module is the reader; the writer half (``start_response``,
``send_body``, ``send_trailers``, ``send_continue``, ``send_error``) is
``writer.ResponseWriter``, which ``ServerConnection`` extends.

The request head is tokenized by llhttp (``httptools``) in strict mode; on
top of it this module enforces what llhttp lets through (see
docs/reference/http.md for the full list of rejections and their status
codes). Bodies are framed here, not by llhttp, so that chunk extensions and
trailers are bounded by ``Limits`` and the exact end of every head is known
(pipelining, protocol switches). Every error is a ``RemoteProtocolError``
carrying the status to answer with; after one, the connection is unusable.
"""

from __future__ import annotations

import re

import httptools

from bayou.protocol.errors import RemoteProtocolError
from bayou.protocol.http11._state import (
    READER_TABLE,
    ReaderState,
    reader_transition,
)
from bayou.protocol.http11.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
    _Sentinel,
)
from bayou.protocol.http11.writer import ResponseWriter
from bayou.protocol.limits import Limits

__all__ = ["Event", "ServerConnection"]

Event = Request | Data | EndOfMessage | ConnectionClosed | _Sentinel

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])")
_FAST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/1\.([01])\r\n").match
_VERSION_TAIL_RE = re.compile(rb".* HTTP/[0-9]\.[0-9]")
# Host = uri-host [ ":" port ]: reg-name / IPv4 / IP-literal (RFC 3986), possibly empty.
_HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_host_fullmatch = _HOST_RE.fullmatch
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*)[ \t]*"
)
_FIELD_LINE_RE = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*((?:[\x21-\x7e\x80-\xff]|[ \t]+(?=[\x21-\x7e\x80-\xff]))*)[ \t]*"
)

_NO_BODY, _LENGTH, _CHUNKED = 0, 1, 2
_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS = 0, 1, 2, 3
_SWITCHABLE = frozenset({b"websocket"})
_SPECIAL = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect"}
)
_EOM = EndOfMessage()
_R_IDLE = ReaderState.IDLE
_R_BODY = ReaderState.BODY
_R_MUST_CLOSE = ReaderState.MUST_CLOSE
_R_ERROR = ReaderState.ERROR
_BODY_AFTER_HEAD = READER_TABLE[_R_IDLE, "head"]
_IDLE_AFTER_END = READER_TABLE[_R_BODY, "end"]

# Host values that matched _HOST_RE: a connection (and usually every client)
# sends the same Host on each request, and a set lookup is much cheaper than
# the regex. Bounded in count and length, cleared when full.
_valid_hosts: set[bytes] = set()
_VALID_HOSTS_MAX = 256
_VALID_HOST_MAX_LEN = 255


def _check_host(host: bytes) -> None:
    if host in _valid_hosts:
        return
    if _host_fullmatch(host) is None:
        raise _bad("invalid Host header")
    if len(host) <= _VALID_HOST_MAX_LEN:
        if len(_valid_hosts) >= _VALID_HOSTS_MAX:
            _valid_hosts.clear()
        _valid_hosts.add(host)


def _bad(message: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(message, status)


class _HeadSink:
    """llhttp callback target: collects one request head, validates it on completion."""

    __slots__ = (
        "body_kind",
        "error",
        "headers",
        "length",
        "max_headers",
        "method",
        "request",
        "special",
        "url",
        "version",
    )

    def __init__(self, limits: Limits) -> None:
        self.max_headers = limits.max_headers
        self.method = b""
        self.version = ""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.special: list[tuple[bytes, bytes]] = []
        self.request: Request | None = None
        self.error: RemoteProtocolError | None = None
        self.body_kind = _NO_BODY
        self.length = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        if len(headers) >= self.max_headers:
            self.error = _bad("too many header fields", 431)
            raise self.error
        name = name.lower()
        if value and value[-1] in (32, 9):
            value = value.rstrip(b" \t")  # llhttp strips leading but not trailing OWS
        headers.append((name, value))
        if name in _SPECIAL:
            self.special.append((name, value))

    def on_headers_complete(self) -> None:
        # Runs before llhttp's own post-header checks, so our statuses (501
        # for an unknown transfer coding, ...) win over its generic errors.
        # method, target and version come from our request-line regex (fast
        # path or _check_request_line), which ran before the end of the
        # request line was given to llhttp. The regex fixes the target's
        # bounds (single spaces, no whitespace inside), so it is exactly what
        # llhttp's on_url would report; not having that callback saves a
        # Python call per request.
        request = Request(self.method, self.url, self.version, self.headers)
        special = self.special
        if (
            len(special) == 1
            and special[0][0] == b"host"
            and special[0][1] in _valid_hosts
            and self.url[:1] == b"/"
            and self.method != b"CONNECT"
        ):
            # Fast path: the typical bodyless request with just an already
            # validated Host among the special fields: what _validate_request
            # would conclude (keep_alive, no upgrade / expect, no body).
            if self.version != "1.1":
                request.keep_alive = False
            self.body_kind = _NO_BODY
            self.length = 0
            self.request = request
            return
        try:
            self.body_kind, self.length = _validate_request(request, special)
        except RemoteProtocolError as exc:
            self.error = exc
            raise
        self.request = request


class ServerConnection(ResponseWriter):
    """One HTTP/1.1 connection, server side: parses requests (here) and
    serializes responses (``ResponseWriter``).

    The reader and the writer have separate states (see ``_state``), so the
    next request may be parsed while a response is being written. Callers
    answer requests in the order they were received.
    """

    __slots__ = (
        "_body_kind",
        "_buf",
        "_chunk_state",
        "_eof",
        "_error",
        "_fed",
        "_keep_alive",
        "_limits",
        "_line_end",
        "_parser",
        "_parser_dirty",
        "_pos",
        "_remaining",
        "_request",
        "_sink",
        "_trailer_bytes",
        "_trailers",
        "reader_state",
    )

    def __init__(self, limits: Limits | None = None, server_name: bytes | None = b"bayou") -> None:
        super().__init__(server_name)
        self._limits = limits if limits is not None else Limits()
        self.reader_state: str = ReaderState.IDLE
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._sink = _HeadSink(self._limits)
        self._parser = httptools.HttpRequestParser(self._sink)
        self._parser_dirty = False
        self._fed = 0  # bytes of the current head already given to llhttp (relative to _pos)
        self._line_end = -1  # end of the request line (relative to _pos) once seen
        self._request: Request | None = None
        self._keep_alive = True
        self._body_kind = _NO_BODY
        self._remaining = 0
        self._chunk_state = _SIZE
        self._trailers: list[tuple[bytes, bytes]] = []
        self._trailer_bytes = 0

    # ------------------------------------------------------------------ reading

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` signals EOF."""
        if not data:
            self._eof = True
            return
        state = self.reader_state
        if state is _R_MUST_CLOSE or state is _R_ERROR:
            return  # nothing after the last request (or an error) will ever be read
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not consumed (after a protocol switch: the new protocol's)."""
        return self._buf[self._pos :]

    @property
    def buffered(self) -> int:
        """Number of received bytes not yet turned into events."""
        return len(self._buf) - self._pos

    def next_event(self) -> Event:
        """The next event; raises RemoteProtocolError (with ``status_hint``) on bad input."""
        state = self.reader_state
        try:
            if state is ReaderState.IDLE:
                if self._pos >= len(self._buf) and not self._eof:
                    return NEED_DATA  # the common "between requests" case, kept cheap
                return self._next_head()
            if state is ReaderState.BODY:
                if self._body_kind == _NO_BODY:
                    request = self._request
                    if request is not None and request.keep_alive:
                        # _end_message's common case, inlined: BODY -> IDLE.
                        self.reader_state = _IDLE_AFTER_END
                        return _EOM
                    return self._end_message(_EOM)
                return self._next_body()
        except RemoteProtocolError as exc:
            self._error = exc
            self.reader_state = ReaderState.ERROR
            raise
        if state is ReaderState.ERROR:
            assert self._error is not None
            raise self._error
        if state is ReaderState.CLOSED:
            return ConnectionClosed()
        return PAUSED

    def _next_head(self) -> Event:
        buf = self._buf
        pos = self._pos
        n = len(buf)
        if self._fed == 0 and pos < n and buf[pos] > 13:
            # Fast path: a whole, well-formed head is buffered (the usual case).
            # Anything unusual falls through to the incremental path below,
            # which produces the precise error.
            end = buf.find(b"\r\n\r\n", pos)
            if end >= 0:
                # The match ends at the first CRLF (the target excludes CR/LF).
                m = _FAST_LINE_RE(buf, pos, end + 2)
                if m is not None:
                    line_end = m.end() - 2
                    limits = self._limits
                    if (
                        line_end - pos <= limits.max_request_line
                        and end + 2 - line_end <= limits.max_header_bytes
                    ):
                        sink = self._sink
                        sink.method, sink.url, minor = m.groups()
                        sink.version = "1.1" if minor == b"1" else "1.0"
                        # _feed, inlined (_fed stays 0: if llhttp rejects the
                        # head, the reader is in ERROR and never resumes).
                        stop = end + 4
                        try:
                            self._parser.feed_data(buf if pos == 0 and stop == n else buf[pos:stop])
                        except Exception as exc:
                            self._feed_failed(exc, buf, stop)
                        self._pos = stop
                        return self._start_message()
        if self._fed == 0:
            # RFC 9112 section 2.2: ignore empty lines before a request-line.
            while buf.startswith(b"\r\n", pos):
                pos += 2
            self._pos = pos
            if pos < n and buf[pos] == 10:
                raise _bad("bare LF before request line")
            if pos == n - 1 and buf[pos] == 13 and not self._eof:
                return NEED_DATA  # maybe the first half of an empty line
        if pos >= n:
            if self._eof:
                self.reader_state = reader_transition(self.reader_state, "eof")
                return ConnectionClosed()
            return NEED_DATA
        limits = self._limits
        line_end = self._line_end
        if line_end < 0:
            idx = buf.find(b"\r\n", pos + max(self._fed - 1, 0))
            if idx < 0:
                if n - pos > limits.max_request_line:
                    raise _bad("request line too long", 414)
            else:
                line_end = idx - pos
                if line_end > limits.max_request_line:
                    raise _bad("request line too long", 414)
                sink = self._sink
                sink.method, sink.url, sink.version = _check_request_line(buf[pos:idx])
                self._line_end = line_end
        end = -1
        if line_end >= 0:
            end = buf.find(b"\r\n\r\n", pos + max(line_end, self._fed - 3))
            stop = end + 4 if end >= 0 else n
            if stop - pos - line_end - 2 > limits.max_header_bytes:
                raise _bad("request header section too large", 431)
        else:
            stop = n
        if stop - pos > self._fed:
            self._feed(buf, pos + self._fed, stop)
            self._fed = stop - pos
        if end < 0:
            if self._eof:
                raise _bad("connection closed in the middle of a request head")
            return NEED_DATA
        self._pos = stop
        self._fed = 0
        self._line_end = -1
        return self._start_message()

    def _feed(self, buf: bytes, start: int, stop: int) -> None:
        try:
            self._parser.feed_data(buf if start == 0 and stop == len(buf) else buf[start:stop])
        except Exception as exc:
            self._feed_failed(exc, buf, stop)

    def _feed_failed(self, exc: Exception, buf: bytes, stop: int) -> None:
        """Turn what llhttp raised into our error (an upgrade pause is not one)."""
        try:
            raise exc
        except httptools.HttpParserUpgrade:
            self._parser_dirty = True  # llhttp stays paused after an upgrade
        except httptools.HttpParserCallbackError:
            assert self._sink.error is not None
            raise self._sink.error from None
        except httptools.HttpParserInvalidMethodError:
            head = buf[self._pos : stop]
            method = head.split(b" ", 1)[0]
            if method and _TOKEN_RE.fullmatch(method):
                raise _bad("method not implemented", 501) from None
            raise _bad("invalid request method") from None
        except httptools.HttpParserError as exc:
            text = str(exc)
            if "HTTP version" in text:
                raise _bad("HTTP version not supported", 505) from None
            raise _bad(f"malformed request: {text}") from None

    def _start_message(self) -> Request:
        sink = self._sink
        request = sink.request
        if request is None:
            # llhttp saw the blank line but not a head (cannot happen with a
            # validated request line; kept as a guard against a parser change).
            raise _bad("malformed request head")
        sink.request = None
        sink.headers = []
        if sink.special:
            sink.special = []
        kind = self._body_kind = sink.body_kind
        if kind != _NO_BODY or self._parser_dirty:
            self._parser = httptools.HttpRequestParser(sink)
            self._parser_dirty = False
        self._request = request
        if kind == _LENGTH:
            self._remaining = sink.length
        elif kind == _CHUNKED:
            self._chunk_state = _SIZE
            self._trailers = []
            self._trailer_bytes = 0
        upgrade = request.upgrade
        if upgrade is not None and upgrade in _SWITCHABLE:
            self.reader_state = reader_transition(self.reader_state, "switch")
            return request
        state = self.reader_state
        self.reader_state = (
            _BODY_AFTER_HEAD if state is _R_IDLE else reader_transition(state, "head")
        )
        return request

    def _end_message(self, event: EndOfMessage) -> EndOfMessage:
        assert self._request is not None
        state = self.reader_state
        if self._request.keep_alive:
            self.reader_state = (
                _IDLE_AFTER_END if state is _R_BODY else reader_transition(state, "end")
            )
            return event
        self.reader_state = READER_TABLE.get((state, "end_last")) or reader_transition(
            state, "end_last"
        )
        self._buf = b""
        self._pos = 0
        return event

    def _next_body(self) -> Event:
        kind = self._body_kind
        if kind == _NO_BODY:
            return self._end_message(_EOM)
        if kind == _LENGTH:
            if self._remaining == 0:
                return self._end_message(_EOM)
            return self._take_data()
        return self._next_chunked()

    def _take_data(self) -> Event:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            if self._eof:
                raise _bad("connection closed in the middle of a request body")
            return NEED_DATA
        take = self._remaining if avail > self._remaining else avail
        data = buf if pos == 0 and take == len(buf) else buf[pos : pos + take]
        self._pos = pos + take
        self._remaining -= take
        return Data(data)

    def _next_chunked(self) -> Event:
        limits = self._limits
        while True:
            buf = self._buf
            pos = self._pos
            n = len(buf)
            state = self._chunk_state
            if state == _CHUNK_DATA:
                if self._remaining == 0:
                    self._chunk_state = _CHUNK_CRLF
                    continue
                return self._take_data()
            if state == _CHUNK_CRLF:
                if n - pos < 2:
                    if n - pos == 1 and buf[pos] != 13:
                        raise _bad("chunk data not followed by CRLF")
                    return self._need_body_data()
                if buf[pos : pos + 2] != b"\r\n":
                    raise _bad("chunk data not followed by CRLF")
                self._pos = pos + 2
                self._chunk_state = _SIZE
                continue
            idx = buf.find(b"\r\n", pos)
            if idx < 0:
                _check_no_bare_cr_lf(buf, pos, n)
                if state == _SIZE:
                    if n - pos > 16 + limits.max_chunk_extension:
                        raise _bad("chunk extension too long")
                elif self._trailer_bytes + n - pos > limits.max_trailer_bytes:
                    raise _bad("trailer section too large", 431)
                return self._need_body_data()
            line = buf[pos:idx]
            if 13 in line or 10 in line:  # int needles: faster than b"\r" in line
                raise _bad("bare CR or LF in chunked body")
            self._pos = idx + 2
            if state == _SIZE:
                m = _CHUNK_LINE_RE.fullmatch(line)
                if m is None:
                    raise _bad("invalid chunk size line")
                if len(line) - m.end(1) > limits.max_chunk_extension:
                    raise _bad("chunk extension too long")
                size = int(m[1], 16)
                if size:
                    self._remaining = size
                    self._chunk_state = _CHUNK_DATA
                else:
                    self._chunk_state = _TRAILERS
                continue
            # _TRAILERS
            if not line:
                trailers = self._trailers
                return self._end_message(EndOfMessage(tuple(trailers)) if trailers else _EOM)
            self._trailer_bytes += len(line) + 2
            if self._trailer_bytes > limits.max_trailer_bytes:
                raise _bad("trailer section too large", 431)
            if len(self._trailers) >= limits.max_headers:
                raise _bad("too many trailer fields", 431)
            if line[0] in (32, 9):
                raise _bad("obsolete line folding in trailers")
            fm = _FIELD_LINE_RE.fullmatch(line)
            if fm is None:
                raise _bad("invalid trailer field")
            self._trailers.append((fm[1].lower(), fm[2]))

    def _need_body_data(self) -> Event:
        if self._eof:
            raise _bad("connection closed in the middle of a chunked body")
        return NEED_DATA


def _check_no_bare_cr_lf(buf: bytes, start: int, stop: int) -> None:
    # Called when no CRLF was found in buf[start:stop]: any LF is bare, and so
    # is any CR except a final one whose LF has not arrived yet.
    if buf.find(b"\n", start, stop) >= 0:
        raise _bad("bare LF in chunked body")
    cr = buf.find(b"\r", start, stop)
    if cr >= 0 and cr != stop - 1:
        raise _bad("bare CR in chunked body")


def _check_request_line(line: bytes) -> tuple[bytes, bytes, str]:
    m = _REQUEST_LINE_RE.fullmatch(line)
    if m is None:
        if b"\n" in line or b"\r" in line:
            raise _bad("bare CR or LF in request line")
        if _VERSION_TAIL_RE.fullmatch(line) is None:
            if line.count(b" ") == 1:
                raise _bad("HTTP/0.9 request lines are not supported")
            raise _bad("malformed request line")
        raise _bad("malformed request line")
    if m[3] != b"1" or m[4] not in (b"0", b"1"):
        raise _bad("HTTP version not supported", 505)
    return m[1], m[2], ("1.1" if m[4] == b"1" else "1.0")


def _validate_request(request: Request, special: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """RFC 9112 checks llhttp does not make; fills keep_alive / upgrade / expect.

    ``special`` holds the framing- and connection-related fields. Returns the
    body framing and the Content-Length.
    """
    target = request.target
    v11 = request.http_version == "1.1"
    host = None
    host_count = 0
    content_length: bytes | None = None
    te: list[bytes] = []
    connection: list[bytes] = []
    upgrade: bytes | None = None
    expect: bytes | None = None
    for name, value in special:
        if name == b"host":
            host_count += 1
            host = value
        elif name == b"content-length":
            if content_length is not None:
                raise _bad("duplicate Content-Length")
            if not value.isdigit() or len(value) > 18:
                raise _bad("invalid Content-Length")
            content_length = value
        elif name == b"transfer-encoding":
            te.extend(t.strip(b" \t").lower() for t in value.split(b","))
        elif name == b"connection":
            connection.extend(t.strip(b" \t").lower() for t in value.split(b","))
        elif name == b"upgrade":
            upgrade = value.lower()
        elif name == b"expect":
            expect = value.lower()
    if host_count > 1:
        raise _bad("more than one Host header")
    if host_count == 0 and v11:
        raise _bad("missing Host header")
    if host is not None:
        _check_host(host)
    if te:
        if content_length is not None:
            raise _bad("both Content-Length and Transfer-Encoding")
        if not v11:
            raise _bad("Transfer-Encoding in an HTTP/1.0 request")
        if te[-1] != b"chunked":
            raise _bad("chunked is not the final transfer coding")
        if len(te) > 1:
            raise _bad("unsupported transfer coding", 501)
    method = request.method
    if method == b"CONNECT":
        raise _bad("CONNECT is not supported", 501)
    if not target.startswith(b"/"):
        if target == b"*":
            if method != b"OPTIONS":
                raise _bad("asterisk-form target is only valid for OPTIONS")
        elif b"://" not in target:
            raise _bad("invalid request target")
    if v11:
        request.keep_alive = b"close" not in connection
    else:
        request.keep_alive = b"keep-alive" in connection and b"close" not in connection
    if upgrade is not None and b"upgrade" in connection:
        request.upgrade = upgrade
    if te:
        kind, length = _CHUNKED, 0
    elif content_length is not None and int(content_length):
        kind, length = _LENGTH, int(content_length)
    else:
        kind, length = _NO_BODY, 0
    request.expect_continue = v11 and expect == b"100-continue" and kind != _NO_BODY
    return kind, length
