"""Server side of an RFC 6455 connection, sans I/O.

Feed received bytes to :meth:`WebSocketConnection.receive_data`; it returns the
events they complete. Bytes the protocol must answer on its own (pongs, the
close echo, the close that fails the connection) accumulate in
:attr:`~WebSocketConnection.output` until :meth:`data_to_send` takes them.

The parser never raises into the I/O layer: a protocol violation becomes a
:class:`ConnectionFailed` event carrying the close code (1002 protocol error,
1007 invalid data, 1009 too big) with the close frame already queued, after
the design of the ``websockets`` library. After that, or after a close frame
from the peer, further input is ignored.

Fast path: a complete, unfragmented frame found in one ``receive_data`` call
is unmasked and decoded in a single step, with no intermediate buffering.
Larger frames are consumed as their bytes arrive (so a big frame costs no
quadratic re-buffering and invalid UTF-8 is detected in the first bad chunk).
"""

from __future__ import annotations

import codecs
from typing import Final

from bayou.protocol.errors import RemoteProtocolError
from bayou.protocol.limits import Limits
from bayou.protocol.websocket.deflate import PerMessageDeflate
from bayou.protocol.websocket.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    build_close_payload,
    build_frame,
    is_valid_close_code,
    unmask,
)

__all__ = [
    "COMPRESS_MIN_SIZE",
    "BinaryMessage",
    "CloseReceived",
    "ConnectionFailed",
    "Event",
    "Pong",
    "State",
    "TextMessage",
    "WebSocketConnection",
]


class TextMessage:
    """A complete text message (reassembled, decompressed, valid UTF-8)."""

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data


class BinaryMessage:
    """A complete binary message (reassembled, decompressed)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Pong:
    """A pong from the peer (answering one of our pings, or unsolicited)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class CloseReceived:
    """The peer sent a close frame: ``code`` is 1005 when it carried none.

    If we had not sent a close yet, the echo is queued in ``output``; either
    way the close handshake is complete and the server should close TCP.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class ConnectionFailed:
    """We failed the connection (peer broke the protocol); a close frame with
    ``code`` is queued in ``output``. The server should send it and close TCP."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


Event = TextMessage | BinaryMessage | Pong | CloseReceived | ConnectionFailed


class State:
    OPEN: Final = 1
    CLOSE_SENT: Final = 2
    """We sent a close frame and wait for the peer's."""
    CLOSED: Final = 3
    """Close handshake complete or connection failed: nothing more is parsed."""


class _Fail(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


COMPRESS_MIN_SIZE = 64
"""Default ``compress_min_size``: with permessage-deflate, smaller outgoing
messages are sent uncompressed (RFC 7692 lets the sender choose per message);
deflating a few bytes costs microseconds of CPU and saves nothing after the
block overhead."""

_new_decoder = codecs.getincrementaldecoder("utf-8")
_CLOSE_FRAME_NO_CODE = build_frame(OP_CLOSE, b"")


class WebSocketConnection:
    """One server-side WebSocket connection after a successful handshake."""

    __slots__ = (
        "_buf",
        "_compress_min",
        "_decoder",
        "_fast_max",
        "_frag_op",
        "_frag_parts",
        "_frag_size",
        "_frame_compressed",
        "_frame_fin",
        "_frame_mask",
        "_frame_offset",
        "_frame_remaining",
        "_idle",
        "_in_frame",
        "_max_frame",
        "_max_message",
        "_msg_compressed",
        "deflate",
        "output",
        "state",
    )

    def __init__(
        self,
        limits: Limits | None = None,
        deflate: PerMessageDeflate | None = None,
        compress_min_size: int = COMPRESS_MIN_SIZE,
    ) -> None:
        limits = limits or Limits()
        self._compress_min = compress_min_size
        self._max_frame = limits.ws_max_frame_size
        self._max_message = limits.ws_max_message_size
        # Largest payload the fast path may accept without a limit check.
        self._fast_max = min([125, *(x for x in (self._max_frame, self._max_message) if x)])
        self.deflate = deflate
        self.state: int = State.OPEN
        self.output: list[bytes] = []
        """Protocol-generated frames waiting to be written (see data_to_send)."""
        self._buf = b""
        # The data message being reassembled: its opcode (0 = none), parts
        # (str for text, bytes for binary) and raw size so far.
        self._frag_op = 0
        self._frag_parts: list[str] | list[bytes] = []
        self._frag_size = 0
        self._msg_compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        # The data frame whose payload is still arriving.
        self._in_frame = False
        self._frame_fin = False
        self._frame_compressed = False
        self._frame_mask = b""
        self._frame_offset = 0
        self._frame_remaining = 0
        self._idle = True
        """No partial frame, message or header pending, not closed: the fast
        path in receive_data may run."""

    # -- output ---------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Take the protocol-generated bytes (pongs, close frames) queued so far."""
        out = b"".join(self.output)
        self.output.clear()
        return out

    def send_text(self, text: str) -> bytes:
        """Frame a text message. Returns the bytes to write."""
        payload = text.encode("utf-8")
        if self.deflate is not None and len(payload) >= self._compress_min:
            return build_frame(OP_TEXT, self.deflate.compress(payload), rsv1=True)
        return build_frame(OP_TEXT, payload)

    def send_bytes(self, data: bytes) -> bytes:
        """Frame a binary message. Returns the bytes to write."""
        if self.deflate is not None and len(data) >= self._compress_min:
            return build_frame(OP_BINARY, self.deflate.compress(data), rsv1=True)
        return build_frame(OP_BINARY, data)

    def send_ping(self, payload: bytes = b"") -> bytes:
        return build_frame(OP_PING, payload[:125])

    def send_close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Start the close handshake; returns b"" when a close was already sent.

        An unusable ``code`` or ``reason`` (wrong type) raises before the state
        changes, so the caller can still send another close frame.
        """
        if self.state != State.OPEN:
            return b""
        frame = build_frame(OP_CLOSE, build_close_payload(code, reason))
        self.state = State.CLOSE_SENT
        return frame

    # -- input ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes (possibly none)."""
        if self._idle and len(data) >= 6:
            # Fast path: exactly one small, whole, unfragmented, uncompressed
            # data frame (the common chat/echo case).
            b0 = data[0]
            length = data[1] - 0x80  # negative when unmasked: general path
            if 0 <= length <= self._fast_max and len(data) == length + 6:
                if b0 == 0x81:
                    try:
                        return [TextMessage(unmask(data[6:], data[2:6]).decode("utf-8"))]
                    except UnicodeDecodeError:
                        pass  # the general path reports it
                elif b0 == 0x82:
                    return [BinaryMessage(unmask(data[6:], data[2:6]))]
                elif (b0 == 0xC1 or b0 == 0xC2) and self.deflate is not None:
                    events: list[Event] = []
                    try:
                        raw = self.deflate.decompress(
                            unmask(data[6:], data[2:6]), True, self._max_message
                        )
                        if b0 == 0xC1:
                            events.append(TextMessage(raw.decode("utf-8")))
                        else:
                            events.append(BinaryMessage(raw))
                    except RemoteProtocolError as exc:
                        self._fail(exc.status_hint, str(exc), events)
                    except UnicodeDecodeError:
                        self._fail(1007, "invalid UTF-8 in text message", events)
                    return events
        events = []
        if self.state == State.CLOSED:
            return events
        buf = self._buf + data if self._buf else data
        n = len(buf)
        pos = 0
        try:
            while pos < n:
                if self._in_frame:
                    take = min(self._frame_remaining, n - pos)
                    chunk = buf[pos : pos + take]
                    pos += take
                    self._payload_chunk(chunk, events)
                    continue
                if n - pos < 2:
                    break
                b0 = buf[pos]
                b1 = buf[pos + 1]
                length = b1 & 0x7F
                hdr = pos + 2
                if length == 126:
                    if n - pos < 4:
                        break
                    length = (buf[hdr] << 8) | buf[hdr + 1]
                    hdr += 2
                elif length == 127:
                    if n - pos < 10:
                        break
                    length = int.from_bytes(buf[hdr : hdr + 8], "big")
                    hdr += 8
                    if length >> 63:
                        raise _Fail(1002, "invalid frame length")
                if not b1 & 0x80:
                    raise _Fail(1002, "client frames must be masked")
                if n - hdr < 4:
                    break
                mask = buf[hdr : hdr + 4]
                hdr += 4
                opcode = b0 & 0x0F
                if b0 & 0x30:
                    raise _Fail(1002, "reserved bits set")
                rsv1 = b0 & 0x40
                fin = b0 & 0x80
                if opcode & 0x8:
                    # Control frame: small, whole, never compressed.
                    if rsv1:
                        raise _Fail(1002, "compressed control frame")
                    if not fin:
                        raise _Fail(1002, "fragmented control frame")
                    if length > 125:
                        raise _Fail(1002, "control frame too long")
                    if n - hdr < length:
                        break
                    payload = unmask(buf[hdr : hdr + length], mask)
                    pos = hdr + length
                    if self._control(opcode, payload, events):
                        pos = n
                        break
                    continue
                # Data frame.
                if opcode == 0:
                    if not self._frag_op:
                        raise _Fail(1002, "continuation frame without a message to continue")
                    if rsv1:
                        raise _Fail(1002, "RSV1 set on a continuation frame")
                elif opcode in (OP_TEXT, OP_BINARY):
                    if self._frag_op:
                        raise _Fail(1002, "new message before the previous one finished")
                    if rsv1 and self.deflate is None:
                        raise _Fail(1002, "RSV1 set without permessage-deflate")
                else:
                    raise _Fail(1002, f"reserved opcode {opcode}")
                if self._max_frame and length > self._max_frame:
                    raise _Fail(1009, "frame too big")
                if (
                    self._max_message
                    and self._frag_size + length > self._max_message
                    and not (rsv1 or self._msg_compressed)
                ):
                    raise _Fail(1009, "message too big")
                if opcode and fin and n - hdr >= length:
                    # Fast path: a whole single-frame message.
                    payload = unmask(buf[hdr : hdr + length], mask)
                    pos = hdr + length
                    if rsv1:
                        assert self.deflate is not None
                        payload = self.deflate.decompress(payload, True, self._max_message)
                    if opcode == OP_TEXT:
                        try:
                            events.append(TextMessage(payload.decode("utf-8")))
                        except UnicodeDecodeError:
                            raise _Fail(1007, "invalid UTF-8 in text message") from None
                    else:
                        events.append(BinaryMessage(payload))
                    continue
                if opcode:
                    self._frag_op = opcode
                    self._frag_parts = []
                    self._frag_size = 0
                    self._msg_compressed = bool(rsv1)
                    self._decoder = _new_decoder() if opcode == OP_TEXT else None
                self._frag_size += length
                self._in_frame = True
                self._frame_fin = bool(fin)
                self._frame_compressed = self._msg_compressed
                self._frame_mask = mask
                self._frame_offset = 0
                self._frame_remaining = length
                pos = hdr
                if length == 0:
                    self._payload_chunk(b"", events)
        except _Fail as failure:
            self._fail(failure.code, failure.reason, events)
            return events
        except RemoteProtocolError as exc:
            self._fail(exc.status_hint, str(exc), events)
            return events
        if pos < n:
            self._buf = buf[pos:]
            self._idle = False
        else:
            self._buf = b""
            self._idle = not (self._in_frame or self._frag_op) and self.state != State.CLOSED
        return events

    def _payload_chunk(self, chunk: bytes, events: list[Event]) -> None:
        """Consume the next bytes of the current data frame's payload."""
        offset = self._frame_offset & 3
        mask = self._frame_mask
        if offset:
            mask = mask[offset:] + mask[:offset]
        raw = unmask(chunk, mask)
        self._frame_offset += len(chunk)
        self._frame_remaining -= len(chunk)
        frame_done = self._frame_remaining == 0
        if frame_done:
            self._in_frame = False
        message_done = frame_done and self._frame_fin
        if self._frame_compressed:
            assert self.deflate is not None
            raw = self.deflate.decompress(raw, message_done, self._max_message)
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(raw, message_done)
            except UnicodeDecodeError:
                raise _Fail(1007, "invalid UTF-8 in text message") from None
            if not message_done:
                pending = decoder.getstate()[0]
                # CPython buffers an incomplete ED A0..ED BF (a UTF-16
                # surrogate) instead of rejecting it at once; fail fast here.
                if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                    raise _Fail(1007, "invalid UTF-8 in text message")
            if text:
                self._frag_parts.append(text)  # type: ignore[arg-type]
        elif raw:
            self._frag_parts.append(raw)  # type: ignore[arg-type]
        if message_done:
            parts = self._frag_parts
            if self._frag_op == OP_TEXT:
                events.append(TextMessage("".join(parts)))  # type: ignore[arg-type]
            else:
                events.append(BinaryMessage(b"".join(parts)))  # type: ignore[arg-type]
            self._frag_op = 0
            self._frag_parts = []
            self._frag_size = 0
            self._decoder = None
            self._msg_compressed = False

    def _control(self, opcode: int, payload: bytes, events: list[Event]) -> bool:
        """Handle a control frame; True when parsing must stop (close received)."""
        if opcode == OP_PING:
            if self.state == State.OPEN:
                self.output.append(build_frame(OP_PONG, payload))
            return False
        if opcode == OP_PONG:
            events.append(Pong(payload))
            return False
        if opcode != OP_CLOSE:
            raise _Fail(1002, f"reserved opcode {opcode}")
        if not payload:
            code, reason = 1005, ""
        elif len(payload) == 1:
            raise _Fail(1002, "close frame with a one-byte payload")
        else:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                raise _Fail(1002, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                # Invalid data rather than a framing error, as websockets does.
                raise _Fail(1007, "invalid UTF-8 in close reason") from None
        if self.state == State.OPEN:
            # Echo the code (RFC 6455 §5.5.1); a close without one gets one without.
            self.output.append(
                build_frame(OP_CLOSE, code.to_bytes(2, "big"))
                if code != 1005
                else _CLOSE_FRAME_NO_CODE
            )
        self.state = State.CLOSED
        self._idle = False
        self._buf = b""
        events.append(CloseReceived(code, reason))
        return True

    def _fail(self, code: int, reason: str, events: list[Event]) -> None:
        if self.state == State.OPEN:
            self.output.append(build_frame(OP_CLOSE, build_close_payload(code, reason)))
        self.state = State.CLOSED
        self._idle = False
        self._buf = b""
        self._frag_parts = []
        events.append(ConnectionFailed(code, reason))
