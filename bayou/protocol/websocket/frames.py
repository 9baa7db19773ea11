"""RFC 6455 frame constants, close-code rules and the frame *writer*.

The reader lives in :mod:`bayou.protocol.websocket.connection`, where it can
keep its state in locals; this module holds what both directions share.
Server frames are never masked (RFC 6455 §5.1), so writing one is a header and
the payload.
"""

from __future__ import annotations

import struct

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "build_close_payload",
    "build_frame",
    "is_valid_close_code",
    "unmask",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def build_frame(opcode: int, payload: bytes, *, rsv1: bool = False, fin: bool = True) -> bytes:
    """One unmasked frame, as the server sends it: header followed by ``payload``.

    One concatenation per frame; the header is two, four or ten bytes.
    """
    first = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return _pack_short(first, 126, n) + payload
    return _pack_long(first, 127, n) + payload


def build_close_payload(code: int | None, reason: str = "") -> bytes:
    """Close frame body: a two-byte code and a UTF-8 reason, or nothing for ``None``.

    The reason is truncated (on a character boundary) so the payload stays within
    the 125 bytes a control frame may carry.
    """
    if code is None:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        raw = raw[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may put ``code`` on the wire (RFC 6455 §7.4, IANA registry).

    1005, 1006 and 1015 are reserved for local use and never sent; 1004 and
    1016-2999 are unassigned; 3000-4999 belong to libraries and applications.
    """
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated.

    Done on one big integer so the whole payload is XORed in C: no per-byte
    Python loop, and just the int conversions as intermediate copies.
    """
    n = len(payload)
    if n == 0:
        return b""
    key = mask * ((n >> 2) + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key[:n], "little")).to_bytes(
        n, "little"
    )
