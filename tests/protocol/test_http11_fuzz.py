"""Property tests: any byte stream is parsed or rejected with RemoteProtocolError.

The contract (docs/reference/http.md): ``next_event`` returns events or
raises ``RemoteProtocolError`` with a documented status; never another
exception, and never loops without consuming input.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayou.protocol.errors import RemoteProtocolError
from bayou.protocol.http11.connection import ServerConnection
from bayou.protocol.http11.events import NEED_DATA, PAUSED, ConnectionClosed, Data, Request
from bayou.protocol.limits import Limits

DOCUMENTED_STATUSES = {400, 414, 431, 501, 505}

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;e=v\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
]

LIMITS = Limits(max_request_line=256, max_header_bytes=512, max_headers=8, max_trailer_bytes=64)


def feed(data: bytes, splits: list[int]) -> None:
    conn = ServerConnection(LIMITS)
    cuts = sorted({min(s, len(data)) for s in splits} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    budget = 4 * len(data) + 16  # events can never outnumber the input bytes by much
    try:
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            while True:
                budget -= 1
                assert budget > 0, "parser made no progress"
                event = conn.next_event()
                if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
                    break
                assert isinstance(event, (Request, Data)) or type(event).__name__ == "EndOfMessage"
    except RemoteProtocolError as exc:
        assert exc.status_hint in DOCUMENTED_STATUSES


split_lists = st.lists(st.integers(min_value=0, max_value=400), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), split_lists)
def test_arbitrary_bytes(data: bytes, splits: list[int]) -> None:
    """Arbitrary bytes: parsed or rejected with a documented status, never a crash or hang."""
    feed(data, splits)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)) * draw(st.integers(1, 2)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [b"\r", b"\n", b" ", b"\t", b":", b"\x00", b"\x85", b"0", b"\r\n", b";"]
                )
            )
        elif op == "delete" and pos < len(data):
            del data[pos]
    return bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), split_lists)
def test_mutated_requests(data: bytes, splits: list[int]) -> None:
    """Mutations of valid requests: parsed or rejected with a documented status."""
    feed(data, splits)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SEEDS), split_lists)
def test_split_points_do_not_matter(data: bytes, splits: list[int]) -> None:
    """The events for a valid stream are the same however it is split."""

    def events(pieces: list[bytes]) -> list[object]:
        conn = ServerConnection(LIMITS)
        out: list[object] = []
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED:
                if isinstance(event, ConnectionClosed):
                    break
                out.append(event)
            if out and isinstance(out[-1], ConnectionClosed):
                break
        return out

    cuts = sorted({min(s, len(data)) for s in splits} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    whole = events([data])
    split = events(pieces)
    assert [e for e in whole if not isinstance(e, Data)] == [
        e for e in split if not isinstance(e, Data)
    ]
    assert b"".join(e.data for e in whole if isinstance(e, Data)) == b"".join(
        e.data for e in split if isinstance(e, Data)
    )
