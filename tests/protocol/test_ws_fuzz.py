"""Property tests: arbitrary bytes give events or a close code, never an exception or a hang."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from bayou.protocol.limits import Limits
from bayou.protocol.websocket import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    PerMessageDeflate,
    Pong,
    TextMessage,
    WebSocketConnection,
)
from bayou.protocol.websocket.connection import Event
from tests.protocol.test_ws_connection import frame

LIMITS = Limits(ws_max_frame_size=4096, ws_max_message_size=8192)


def describe(events: list[Event]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for e in events:
        if isinstance(e, (TextMessage, BinaryMessage)):
            out.append((type(e).__name__, e.data))
        elif isinstance(e, Pong):
            out.append(("Pong", e.payload))
        else:
            assert isinstance(e, (CloseReceived, ConnectionFailed))
            out.append((type(e).__name__, e.code))
    return out


def run(data: bytes, cuts: list[int], deflate: bool) -> list[tuple[str, object]]:
    conn = WebSocketConnection(LIMITS, PerMessageDeflate() if deflate else None)
    events: list[Event] = []
    prev = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += conn.receive_data(data[prev:cut])
        prev = max(prev, cut)
    return describe(events)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=8), st.booleans())
def test_arbitrary_bytes(data: bytes, cuts: list[int], deflate: bool) -> None:
    """Random input never raises; events are identical however the bytes are split."""
    once = run(data, [], deflate)
    assert run(data, cuts, deflate) == once
    assert all(kind != "ConnectionFailed" or code in (1002, 1007, 1009) for kind, code in once)


frames = st.builds(
    frame,
    st.sampled_from([0, 1, 2, 8, 9, 10, 3]),
    st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)),
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 0x40, 0x20]),
)


def compressed_frame(payload: bytes, fin: bool) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return frame(2, (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], fin=fin, rsv=0x40)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(frames, st.builds(compressed_frame, st.binary(max_size=5000), st.booleans())),
        max_size=8,
    ),
    st.lists(st.integers(0, 10_000), max_size=8),
    st.booleans(),
)
def test_structured_frames(parts: list[bytes], cuts: list[int], deflate: bool) -> None:
    """Plausible frame sequences: same events whole or split, a close code on failure."""
    data = b"".join(parts)
    once = run(data, [], deflate)
    assert run(data, cuts, deflate) == once
    for kind, value in once:
        if kind == "ConnectionFailed":
            assert value in (1002, 1007, 1009)
        if kind in ("TextMessage", "BinaryMessage"):
            assert isinstance(value, (str, bytes)) and len(value) <= 8192 * 4
