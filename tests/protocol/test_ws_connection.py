"""Frame parsing and the connection state machine, bytes only.

Every input is fed three ways: whole, one byte at a time, and followed by the
first bytes of a further frame (which must not produce an event).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest

from bayou.protocol.limits import Limits
from bayou.protocol.websocket import (
    BinaryMessage,
    CloseReceived,
    PerMessageDeflate,
    Pong,
    State,
    TextMessage,
    WebSocketConnection,
)
from bayou.protocol.websocket.connection import Event
from bayou.protocol.websocket.frames import build_frame, is_valid_close_code, unmask

MASK = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
    length: int | None = None,
) -> bytes:
    """A client frame (masked unless ``mask`` is None)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + unmask(payload, mask)


def whole(conn: WebSocketConnection, data: bytes) -> list[Event]:
    return conn.receive_data(data)


def bytewise(conn: WebSocketConnection, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += conn.receive_data(data[i : i + 1])
    return events


def trailing(conn: WebSocketConnection, data: bytes) -> list[Event]:
    # The first two header bytes of another (long) text frame: no event yet.
    return conn.receive_data(data + b"\x81\xfe")


FEEDS = [whole, bytewise, trailing]
Feed = Callable[[WebSocketConnection, bytes], list[Event]]


def summary(events: list[Event]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for e in events:
        if isinstance(e, (TextMessage, BinaryMessage)):
            out.append((type(e).__name__, e.data))
        elif isinstance(e, Pong):
            out.append(("Pong", e.payload))
        else:
            out.append((type(e).__name__, e.code))
    return out


@pytest.mark.parametrize("feed", FEEDS)
def test_text_and_binary_messages(feed: Feed) -> None:
    """Unfragmented text and binary frames become one message event each."""
    conn = WebSocketConnection()
    data = frame(1, "héllo".encode()) + frame(2, b"\x00\xff" * 100) + frame(1, b"x" * 70000)
    assert summary(feed(conn, data)) == [
        ("TextMessage", "héllo"),
        ("BinaryMessage", b"\x00\xff" * 100),
        ("TextMessage", "x" * 70000),
    ]
    assert conn.output == []


@pytest.mark.parametrize("feed", FEEDS)
def test_empty_messages(feed: Feed) -> None:
    """Zero-length text and binary messages are delivered as empty str / bytes."""
    conn = WebSocketConnection()
    assert summary(feed(conn, frame(1, b"") + frame(2, b""))) == [
        ("TextMessage", ""),
        ("BinaryMessage", b""),
    ]


@pytest.mark.parametrize("feed", FEEDS)
def test_fragmented_message_with_interleaved_ping(feed: Feed) -> None:
    """Fragments are reassembled; a ping between them is answered with a pong."""
    conn = WebSocketConnection()
    data = (
        frame(1, b"frag", fin=False)
        + frame(9, b"hi")
        + frame(0, "mé".encode(), fin=False)
        + frame(0, b"nted")
    )
    assert summary(feed(conn, data)) == [("TextMessage", "fragménted")]
    assert conn.data_to_send() == build_frame(0xA, b"hi")


@pytest.mark.parametrize("feed", FEEDS)
def test_utf8_split_across_fragments(feed: Feed) -> None:
    """A multi-byte character split between two fragments is valid."""
    conn = WebSocketConnection()
    raw = "κόσμε".encode()
    data = frame(1, raw[:3], fin=False) + frame(0, raw[3:])
    assert summary(feed(conn, data)) == [("TextMessage", "κόσμε")]


@pytest.mark.parametrize("feed", FEEDS)
def test_pong_event(feed: Feed) -> None:
    """A pong from the peer is reported with its payload."""
    conn = WebSocketConnection()
    assert summary(feed(conn, frame(0xA, b"abcd"))) == [("Pong", b"abcd")]


@pytest.mark.parametrize("feed", FEEDS)
def test_close_from_peer_is_echoed(feed: Feed) -> None:
    """A close frame is echoed with the same code, and later bytes are ignored."""
    conn = WebSocketConnection()
    events = feed(conn, frame(8, b"\x03\xe8bye") + frame(1, b"ignored"))
    assert summary(events) == [("CloseReceived", 1000)]
    assert isinstance(events[0], CloseReceived) and events[0].reason == "bye"
    assert conn.data_to_send() == build_frame(8, b"\x03\xe8")
    assert conn.state == State.CLOSED


def test_close_without_code() -> None:
    """An empty close frame reports 1005 and is echoed without a code."""
    conn = WebSocketConnection()
    assert summary(conn.receive_data(frame(8, b""))) == [("CloseReceived", 1005)]
    assert conn.data_to_send() == b"\x88\x00"


def test_close_after_our_close_is_not_echoed() -> None:
    """When we closed first, the peer's close completes the handshake silently."""
    conn = WebSocketConnection()
    assert conn.send_close(1001, "bye") == b"\x88\x05\x03\xe9bye"
    assert conn.state == State.CLOSE_SENT
    assert summary(conn.receive_data(frame(8, b"\x03\xe9"))) == [("CloseReceived", 1001)]
    assert conn.output == []
    assert conn.send_close() == b""


FAILURES = [
    ("unmasked", frame(1, b"hi", mask=None), 1002),
    ("rsv2", frame(1, b"hi", rsv=0x20), 1002),
    ("rsv1 without deflate", frame(1, b"hi", rsv=0x40), 1002),
    ("reserved opcode", frame(3, b""), 1002),
    ("reserved control opcode", frame(0xB, b""), 1002),
    ("long ping", frame(9, b"x" * 126), 1002),
    ("fragmented ping", frame(9, b"x", fin=False), 1002),
    ("bare continuation", frame(0, b"x"), 1002),
    ("text inside fragmented message", frame(1, b"a", fin=False) + frame(1, b"b"), 1002),
    ("one-byte close", frame(8, b"\x03"), 1002),
    ("close code 1005", frame(8, b"\x03\xed"), 1002),
    ("close code 999", frame(8, b"\x03\xe7"), 1002),
    ("close code 5000", frame(8, b"\x13\x88"), 1002),
    ("invalid close reason", frame(8, b"\x03\xe8\xff"), 1007),
    ("invalid utf-8", frame(1, b"\xce\xba\xff"), 1007),
    ("invalid utf-8 fragmented", frame(1, b"ok", fin=False) + frame(0, b"\xed\xa0\x80"), 1007),
    ("huge length", frame(2, b"", length=2**63 + 1), 1002),
]


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize(("name", "data", "code"), FAILURES, ids=[f[0] for f in FAILURES])
def test_protocol_errors_fail_with_code(feed: Feed, name: str, data: bytes, code: int) -> None:
    """Each violation yields ConnectionFailed(code) and queues a close frame with it."""
    conn = WebSocketConnection()
    events = feed(conn, data)
    assert summary(events)[-1] == ("ConnectionFailed", code)
    out = conn.data_to_send()
    assert out[0] == 0x88 and int.from_bytes(out[2:4], "big") == code
    assert conn.state == State.CLOSED
    assert conn.receive_data(frame(1, b"more")) == []


def test_invalid_utf8_fails_fast_inside_one_frame() -> None:
    """Invalid UTF-8 is reported before the rest of a long frame arrives."""
    conn = WebSocketConnection()
    data = frame(1, b"\xce\xba" + b"\xf4\x90\x80\x80" + b"a" * 1000)
    assert summary(conn.receive_data(data[:20])) == [("ConnectionFailed", 1007)]
    assert conn.state == State.CLOSED


@pytest.mark.parametrize("feed", FEEDS)
def test_frame_too_big(feed: Feed) -> None:
    """A frame above ws_max_frame_size fails with 1009 from its header alone."""
    conn = WebSocketConnection(Limits(ws_max_frame_size=100, ws_max_message_size=1000))
    data = frame(2, b"x" * 101)
    assert summary(feed(conn, data[:8]))[-1] == ("ConnectionFailed", 1009)


@pytest.mark.parametrize("feed", FEEDS)
def test_message_too_big_after_reassembly(feed: Feed) -> None:
    """Fragments that add up beyond ws_max_message_size fail with 1009."""
    conn = WebSocketConnection(Limits(ws_max_frame_size=100, ws_max_message_size=150))
    data = frame(2, b"x" * 100, fin=False) + frame(0, b"x" * 100)
    assert summary(feed(conn, data))[-1] == ("ConnectionFailed", 1009)


def test_limits_zero_mean_unlimited() -> None:
    """Limits of 0 disable the size checks."""
    conn = WebSocketConnection(Limits(ws_max_frame_size=0, ws_max_message_size=0))
    assert summary(conn.receive_data(frame(2, b"y" * 200000))) == [("BinaryMessage", b"y" * 200000)]


def test_small_limits_apply_to_small_frames() -> None:
    """Even tiny frames respect a tiny message limit (the fast path included)."""
    conn = WebSocketConnection(Limits(ws_max_frame_size=10, ws_max_message_size=5))
    assert summary(conn.receive_data(frame(1, b"123456")))[-1] == ("ConnectionFailed", 1009)


def test_outgoing_frames() -> None:
    """Server frames are unmasked with 7-bit, 16-bit and 64-bit lengths."""
    conn = WebSocketConnection()
    assert conn.send_text("hi") == b"\x81\x02hi"
    assert conn.send_bytes(b"\x00" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert conn.send_bytes(b"\x00" * 70000)[:10] == b"\x82\x7f" + (70000).to_bytes(8, "big")
    assert conn.send_ping(b"p") == b"\x89\x01p"


def test_close_reason_truncated_to_control_frame_size() -> None:
    """A long close reason is cut so the frame stays a valid control frame."""
    conn = WebSocketConnection()
    out = conn.send_close(1000, "é" * 100)
    assert out[1] <= 125
    out[4:].decode("utf-8")


def test_close_code_rules() -> None:
    """Registered codes and 3000-4999 are valid; reserved and unassigned are not."""
    assert all(is_valid_close_code(c) for c in (1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999))
    assert not any(is_valid_close_code(c) for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999))


# -- permessage-deflate on the wire --------------------------------------------


def compress(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


@pytest.mark.parametrize("feed", FEEDS)
def test_compressed_messages(feed: Feed) -> None:
    """RSV1 frames are inflated; a compressed message may be fragmented."""
    conn = WebSocketConnection(deflate=PerMessageDeflate())
    c1 = compress(("hello " * 50).encode())
    c2 = compress(b"\x01\x02" * 300)
    data = frame(1, c1, rsv=0x40) + frame(2, c2[:5], fin=False, rsv=0x40) + frame(0, c2[5:])
    assert summary(feed(conn, data)) == [
        ("TextMessage", "hello " * 50),
        ("BinaryMessage", b"\x01\x02" * 300),
    ]


@pytest.mark.parametrize("feed", FEEDS)
def test_decompression_bomb_stops_at_limit(feed: Feed) -> None:
    """A small compressed frame inflating beyond the message limit fails with 1009."""
    conn = WebSocketConnection(
        Limits(ws_max_message_size=10000, ws_max_frame_size=10000), PerMessageDeflate()
    )
    bomb = compress(b"\x00" * 10_000_000)
    assert len(bomb) < 10000
    assert summary(feed(conn, frame(2, bomb, rsv=0x40)))[-1] == ("ConnectionFailed", 1009)


def test_corrupt_compressed_data() -> None:
    """Data that does not inflate fails the connection with 1007."""
    conn = WebSocketConnection(deflate=PerMessageDeflate())
    events = conn.receive_data(frame(1, b"\xff\xff\xff\xff", rsv=0x40))
    assert summary(events)[-1] == ("ConnectionFailed", 1007)


def test_rsv1_on_continuation_fails() -> None:
    """RSV1 belongs on the first frame of a message only."""
    conn = WebSocketConnection(deflate=PerMessageDeflate())
    c = compress(b"abc")
    events = conn.receive_data(frame(1, c, fin=False, rsv=0x40) + frame(0, b"", rsv=0x40))
    assert summary(events)[-1] == ("ConnectionFailed", 1002)


def test_outgoing_compression_round_trip() -> None:
    """Compressed server messages inflate back, with and without context takeover."""
    for takeover in (False, True):
        codec = PerMessageDeflate(server_no_context_takeover=not takeover)
        conn = WebSocketConnection(deflate=codec)
        d = zlib.decompressobj(-15)
        for text in ("abc" * 100, "abc" * 100, "d" * 64):
            out = conn.send_text(text)
            assert out[0] == 0xC1  # FIN + RSV1 + text
            payload = out[2:] if out[1] < 126 else out[4:]
            assert d.decompress(payload + b"\x00\x00\xff\xff").decode() == text


def test_small_messages_are_not_compressed() -> None:
    """Below COMPRESS_MIN_SIZE a message goes out uncompressed (RSV1 clear)."""
    conn = WebSocketConnection(deflate=PerMessageDeflate())
    assert conn.send_text("hi") == b"\x81\x02hi"
    assert conn.send_bytes(b"") == b"\x82\x00"


@pytest.mark.parametrize("feed", FEEDS)
def test_small_compressed_frame_errors(feed: Feed) -> None:
    """Small compressed frames (the fast path) still enforce UTF-8 and the size limit."""
    conn = WebSocketConnection(deflate=PerMessageDeflate())
    assert summary(feed(conn, frame(1, compress(b"\xff\xfe"), rsv=0x40)))[-1] == (
        "ConnectionFailed",
        1007,
    )
    conn = WebSocketConnection(
        Limits(ws_max_message_size=1000, ws_max_frame_size=1000), PerMessageDeflate()
    )
    bomb = compress(b"a" * 100_000)
    assert len(bomb) <= 125
    assert summary(feed(conn, frame(2, bomb, rsv=0x40)))[-1] == ("ConnectionFailed", 1009)


def test_send_close_with_unusable_code_keeps_the_connection_open() -> None:
    """send_close with a code that cannot be encoded raises before the state
    changes, so a following send_close(1011) still produces a close frame."""
    conn = WebSocketConnection()
    with pytest.raises((TypeError, AttributeError)):
        conn.send_close("abc")  # type: ignore[arg-type]
    assert conn.send_close(1011) == b"\x88\x02\x03\xf3"
    assert conn.send_close(1000) == b""
