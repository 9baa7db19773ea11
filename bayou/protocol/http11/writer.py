"""Response serialization: the writer half of ``ServerConnection``, plus
status lines, the cached Date header and header validation."""

from __future__ import annotations

import re
from email.utils import formatdate
from http import HTTPStatus
from time import time as _time

from bayou.protocol.errors import LocalProtocolError
from bayou.protocol.http11._state import WRITER_TABLE, WriterState, writer_transition
from bayou.protocol.http11.events import Request

__all__ = [
    "BAD_VALUE_RE",
    "TOKEN_RE",
    "ResponseWriter",
    "check_header",
    "date_line",
    "error_response",
    "status_line",
]

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
TOKEN_RE = re.compile(_TOKEN)
# What may never appear in a header value we write: CTLs other than HTAB (CR and LF
# above all: they would let the application inject headers or a second response).
BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

_date_start = _date_next = 0.0  # the second [start, next) that _date_line shows
_date_line = b""


def date_line() -> bytes:
    """``date: <IMF-fixdate>\\r\\n`` for the current second (recomputed once per second)."""
    global _date_start, _date_next, _date_line
    now = _time()
    # Float comparisons per response: int(now) is only needed once a second.
    # (Not just ``now >= _date_next``: the clock may be set back.)
    if not _date_start <= now < _date_next:
        second = int(now)
        _date_line = b"date: " + formatdate(second, usegmt=True).encode("ascii") + b"\r\n"
        _date_start = float(second)
        _date_next = second + 1.0
    return _date_line


_status_lines: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``; cached per status code.

    We always answer ``HTTP/1.1`` (RFC 9110 section 6.2: a server sends its
    highest conforming version); HTTP/1.0 clients are served with 1.0-safe framing.
    """
    line = _status_lines.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            reason = b""
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_status_lines) < 1000:
            _status_lines[status] = line
    return line


def check_header(name: object, value: object) -> None:
    """Raise LocalProtocolError unless ``name`` is a token and ``value`` is
    bytes free of control characters (CR, LF, NUL, ...)."""
    if type(name) is not bytes or type(value) is not bytes:
        raise LocalProtocolError(
            f"response header names and values must be bytes, got {type(name).__name__}"
            f" and {type(value).__name__}",
            500,
        )
    if TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid response header name {name!r}", 500)
    if BAD_VALUE_RE.search(value) is not None:
        raise LocalProtocolError(f"invalid character in response header {name!r} value", 500)


def error_response(status: int, message: str, server_line: bytes) -> bytes:
    """A complete ``Connection: close`` plain-text response for a rejected request."""
    body = (f"{status} {_phrase(status)}\n{message}\n").encode("utf-8", "replace")
    return b"".join(
        (
            status_line(status),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
            date_line(),
            server_line,
            b"\r\n",
            body,
        )
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_STATUS_LINES = _status_lines
_RESPONSE_SPECIAL = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"date", b"server"}
)
# A response field line as we write it: no CTL but HTAB in the value.
_field_line_fullmatch = re.compile(_TOKEN + rb": [^\x00-\x08\x0a-\x1f\x7f]*\r\n").fullmatch

_IDLE = WriterState.IDLE
_AFTER_HEAD = WRITER_TABLE[_IDLE, "head"]  # the only state "head" is allowed from
_IDLE_AFTER_END = WRITER_TABLE[WriterState.SEND_BODY, "end"]
_CLOSE_AFTER_END = WRITER_TABLE[WriterState.SEND_BODY, "end_last"]

# Field lines that passed _check_line, mapped to their lower-cased name when it
# is one of _RESPONSE_SPECIAL (else b""). Applications send the same few header
# lines on almost every response; a dict hit is much cheaper than the regex.
# Bounded in count and line length (so it never holds much), cleared when full.
_checked_lines: dict[bytes, bytes] = {}
_CHECKED_LINES_MAX = 512
_CHECKED_LINE_MAX_LEN = 256


def _check_line(name: bytes, value: bytes, line: bytes) -> bytes:
    """Validate ``line`` (``name: value\\r\\n``); return its special lower-cased name or b""."""
    # One regex per field: token, ": ", no CTL but HTAB in the value (CR/LF
    # above all: no header or response injection). A name containing ": "
    # would be read as a shorter, valid name: harmless.
    if _field_line_fullmatch(line) is None:
        check_header(name, value)  # raises, with the precise reason
    lower = name.lower()
    lname = lower if lower in _RESPONSE_SPECIAL else b""
    # Only lines whose name is a plain token are remembered: then the line
    # alone determines name and value. (A name containing ": " can make the
    # same line; start_response re-checks it when the cached field is
    # special, the only case where the name's reading matters.) Cookies are
    # per user: caching them would only churn the cache (and keep them).
    if len(line) <= _CHECKED_LINE_MAX_LEN and 58 not in name and lower != b"set-cookie":  # ":"
        if len(_checked_lines) >= _CHECKED_LINES_MAX:
            _checked_lines.clear()
        _checked_lines[line] = lname
    return lname


# Response framing modes.
_W_NONE, _W_LENGTH, _W_CHUNKED, _W_CLOSE = 0, 1, 2, 3


class ResponseWriter:
    """Serializes the responses of one connection, in order (see ``ServerConnection``)."""

    __slots__ = (
        "_server_line",
        "_w_app_length",
        "_w_body_done",
        "_w_chunk_trailers",
        "_w_expect_trailers",
        "_w_is_head",
        "_w_keep_alive",
        "_w_mode",
        "_w_no_body",
        "_w_parts",
        "_w_pending",
        "_w_remaining",
        "_w_v11",
        "writer_state",
    )

    def __init__(self, server_name: bytes | None = b"bayou") -> None:
        if server_name:
            check_header(b"server", server_name)
            self._server_line = b"server: " + server_name + b"\r\n"
        else:
            self._server_line = b""
        self.writer_state: str = WriterState.IDLE
        self._w_mode = _W_NONE
        self._w_parts: list[bytes] = []
        self._w_pending = False
        self._w_is_head = False
        self._w_v11 = True
        self._w_no_body = False
        self._w_remaining = 0
        self._w_keep_alive = True
        self._w_app_length: int | None = None
        self._w_expect_trailers = False
        self._w_chunk_trailers = False
        self._w_body_done = False

    def send_continue(self, request: Request) -> bytes:
        """``100 Continue`` bytes, or b"" when not applicable (HTTP/1.0, response started)."""
        if request.http_version != "1.1" or self.writer_state is not WriterState.IDLE:
            return b""
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def start_response(
        self,
        request: Request,
        status: int,
        headers: object,
        *,
        trailers: bool = False,
        close: bool = False,
    ) -> None:
        """Validate and record the response head for ``request``; nothing is written yet.

        The head is serialized with the first ``send_body`` so that a body
        given whole gets a ``Content-Length`` (and one write). Otherwise an
        application ``content-length`` is used, else chunked coding
        (HTTP/1.1) or a close-delimited body (HTTP/1.0). ``trailers`` means
        ``send_trailers`` will end the response. ``close`` forces
        ``Connection: close``. Raises LocalProtocolError (status_hint 500)
        for anything the application got wrong, before any state change.
        """
        if type(status) is not int or not 200 <= status <= 999:
            raise LocalProtocolError(f"invalid response status {status!r}", 500)
        state = self.writer_state
        state = _AFTER_HEAD if state is _IDLE else writer_transition(state, "head")
        is_head = request.method == b"HEAD"
        v11 = request.http_version == "1.1"
        keep_alive = request.keep_alive and not close
        no_body = status == 204 or status == 304
        chunk_trailers = trailers and v11 and not no_body and not is_head
        parts = [_STATUS_LINES.get(status) or status_line(status)]
        app_length: int | None = None
        has_date = has_server = False
        try:
            for name, value in headers:  # type: ignore[attr-defined]
                if type(value) is not bytes:
                    check_header(name, value)  # raises, with the precise reason
                line = name + b": " + value + b"\r\n"
                # (a bytearray name makes a bytearray line: not hashable, never cached)
                lname = _checked_lines.get(line) if type(line) is bytes else None
                if lname is None or (lname and len(lname) != len(name)):
                    # Not cached; or cached for a special field while this name
                    # is longer, e.g. b"date: x" with b"y" (not a Date field).
                    lname = _check_line(name, value, line)
                if not lname:
                    parts.append(line)
                    continue
                if lname == b"content-length":
                    if not value.isdigit() or (app_length is not None and int(value) != app_length):
                        raise LocalProtocolError(f"invalid content-length {value!r}", 500)
                    if app_length is not None:
                        continue
                    app_length = int(value)
                    if chunk_trailers or status == 204:
                        continue
                elif lname == b"transfer-encoding":
                    continue  # the server chooses the framing (ASGI: must ignore it)
                elif lname == b"connection":
                    if b"close" in value.lower():
                        keep_alive = False
                    continue
                elif lname == b"date":
                    has_date = True
                elif lname == b"server":
                    has_server = True
                parts.append(line)
        except LocalProtocolError:
            raise
        except (TypeError, ValueError):
            raise LocalProtocolError(
                "response headers must be an iterable of [name, value] byte pairs", 500
            ) from None
        if not has_date:
            parts.append(date_line())
        if not has_server and self._server_line:
            parts.append(self._server_line)
        self.writer_state = state
        self._w_parts = parts
        self._w_pending = True
        self._w_is_head = is_head
        self._w_v11 = v11
        self._w_no_body = no_body
        self._w_keep_alive = keep_alive
        self._w_app_length = None if chunk_trailers else app_length
        self._w_expect_trailers = trailers
        self._w_chunk_trailers = chunk_trailers
        self._w_body_done = False

    @property
    def head_written(self) -> bool:
        """Whether the current response head has left ``send_body`` (cannot be replaced)."""
        return self.writer_state is WriterState.SEND_BODY and not self._w_pending

    @property
    def awaiting_trailers(self) -> bool:
        """The body is complete and ``send_trailers`` must end the response."""
        return self._w_expect_trailers and self._w_body_done

    def reset_response(self) -> None:
        """Forget a started response whose head was not written yet (to send an error instead)."""
        if self.writer_state is WriterState.SEND_BODY and self._w_pending:
            self.writer_state = writer_transition(self.writer_state, "reset")

    def _head_bytes(self, data_len: int, more_body: bool) -> bytes:
        parts = self._w_parts
        if self._w_no_body:
            mode = _W_NONE
        elif self._w_chunk_trailers:
            mode = _W_CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
        elif self._w_app_length is not None:
            mode = _W_LENGTH
            self._w_remaining = self._w_app_length
        elif not more_body:
            mode = _W_LENGTH
            self._w_remaining = data_len
            if data_len or not self._w_is_head:
                parts.append(b"content-length: %d\r\n" % data_len)
        elif self._w_is_head:
            mode = _W_NONE
        elif self._w_v11:
            mode = _W_CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            mode = _W_CLOSE
            self._w_keep_alive = False
        if not self._w_keep_alive:
            parts.append(b"connection: close\r\n")
        elif not self._w_v11:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self._w_mode = mode
        self._w_pending = False
        self._w_parts = []
        return b"".join(parts)

    def send_body(self, data: bytes, more_body: bool = False) -> bytes:
        """Bytes to write for a piece of the response body (with the head before
        the first piece, and the end of the message after the last one unless
        trailers are expected). Body bytes of HEAD / 204 / 304 responses are dropped."""
        if self._w_body_done:
            raise LocalProtocolError("response body already complete", 500)
        state = self.writer_state
        if (
            not more_body
            and self._w_pending
            and not self._w_expect_trailers
            and state is WriterState.SEND_BODY
        ):
            length = self._w_app_length
            if length is None:
                return self._whole_response(data, True)
            if length == len(data) or self._w_is_head or self._w_no_body:
                return self._whole_response(data, False)
            if length > len(data):
                # Raised before the head is produced: the response can still
                # be reset and replaced by a 500.
                raise LocalProtocolError("response body shorter than its Content-Length", 500)
        self.writer_state = WRITER_TABLE.get((state, "data")) or writer_transition(state, "data")
        head = self._head_bytes(len(data), more_body) if self._w_pending else b""
        framed = b""
        if data and not self._w_is_head:
            mode = self._w_mode
            if mode == _W_LENGTH:
                if len(data) > self._w_remaining:
                    self.writer_state = WriterState.ERROR
                    raise LocalProtocolError("response body longer than its Content-Length", 500)
                self._w_remaining -= len(data)
                framed = data
            elif mode == _W_CHUNKED:
                framed = b"%x\r\n%s\r\n" % (len(data), data)
            elif mode == _W_CLOSE:
                framed = data
        if more_body:
            return head + framed if head else framed
        self._w_body_done = True
        end = b"" if self._w_expect_trailers else self._finish(())
        if head:
            return b"".join((head, framed, end)) if end else head + framed
        return framed + end if end else framed

    def _whole_response(self, data: bytes, add_length: bool) -> bytes:
        # The common case, in one step: the whole body in the first body
        # message (matching the application's Content-Length, if any). Same
        # result as _head_bytes + framing + _finish, without the pieces.
        parts = self._w_parts
        n = len(data)
        is_head = self._w_is_head
        if self._w_no_body:
            n = 0
        elif add_length and (n or not is_head):
            parts.append(b"content-length: %d\r\n" % n)
        keep_alive = self._w_keep_alive
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        elif not self._w_v11:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if n and not is_head:
            parts.append(data)
        self._w_parts = []
        self._w_pending = False
        self._w_body_done = True
        self._w_mode = _W_LENGTH
        self._w_remaining = 0
        self.writer_state = _IDLE_AFTER_END if keep_alive else _CLOSE_AFTER_END
        return b"".join(parts)

    def send_trailers(self, trailers: object) -> bytes:
        """End a response started with ``trailers=True`` (after its last body piece).

        The trailer fields are written when the response is chunked; they are
        dropped when it cannot carry them (HTTP/1.0, HEAD, 204, 304).
        """
        if not self._w_expect_trailers or not self._w_body_done:
            raise LocalProtocolError(
                "http.response.trailers is only valid after the last body message of a"
                " response started with trailers=True",
                500,
            )
        self._w_expect_trailers = False
        return self._finish(trailers)

    def _finish(self, trailers: object) -> bytes:
        if self._w_mode == _W_LENGTH and self._w_remaining and not self._w_is_head:
            self.writer_state = WriterState.ERROR
            raise LocalProtocolError("response body shorter than its Content-Length", 500)
        out = b""
        if self._w_mode == _W_CHUNKED and not self._w_is_head:
            lines = [b"0\r\n"]
            if trailers and self._w_chunk_trailers:
                try:
                    for name, value in trailers:  # type: ignore[attr-defined]
                        check_header(name, value)
                        lines.append(b"%s: %s\r\n" % (name, value))
                except (TypeError, ValueError):
                    raise LocalProtocolError(
                        "trailers must be an iterable of [name, value] byte pairs", 500
                    ) from None
            lines.append(b"\r\n")
            out = b"".join(lines)
        last = not self._w_keep_alive or self._w_mode == _W_CLOSE
        event = "end_last" if last else "end"
        state = self.writer_state
        self.writer_state = WRITER_TABLE.get((state, event)) or writer_transition(state, event)
        return out

    def send_response(
        self, request: Request, status: int, headers: object, body: bytes, *, close: bool = False
    ) -> bytes:
        """Head, body and end of a response whose whole body is known, as one write."""
        self.start_response(request, status, headers, close=close)
        return self.send_body(body)

    def send_error(self, status: int, message: str) -> bytes:
        """A complete ``Connection: close`` response for a rejected request."""
        self.writer_state = writer_transition(self.writer_state, "error_response")
        return error_response(status, message, self._server_line)

    def abandon(self) -> None:
        """The response cannot be completed (application error mid-body): close after this."""
        if self.writer_state is WriterState.IDLE or self.writer_state is WriterState.SEND_BODY:
            self.writer_state = writer_transition(self.writer_state, "abandon")
