"""Every state transition of an HTTP/1.1 server connection, in two tables.

The reader (what the client sends) and the writer (what we answer) move
independently, which is what lets requests be parsed ahead of the response
being written (pipelining). Anything not in a table is a protocol violation:
``RemoteProtocolError`` for the reader, ``LocalProtocolError`` for the writer.
"""

from __future__ import annotations

from typing import Final

from bayou.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "READER_TABLE",
    "WRITER_TABLE",
    "ReaderState",
    "WriterState",
    "reader_transition",
    "writer_transition",
]


class ReaderState:
    """Reader states (plain interned strings: compared by identity on the hot path)."""

    IDLE: Final = "IDLE"
    """Waiting for (or in the middle of) a request head."""
    BODY: Final = "BODY"
    """Head parsed; reading the body (possibly empty)."""
    MUST_CLOSE: Final = "MUST_CLOSE"
    """The last request of this connection is complete; further bytes are ignored."""
    SWITCHED: Final = "SWITCHED"
    """A protocol switch was requested; the remaining bytes belong to the new protocol."""
    CLOSED: Final = "CLOSED"
    """The client sent EOF."""
    ERROR: Final = "ERROR"
    """The client broke the protocol; the connection must be closed."""


class WriterState:
    """Writer states."""

    IDLE: Final = "IDLE"
    """No response in progress (a 100 Continue may still be sent)."""
    SEND_BODY: Final = "SEND_BODY"
    """Head written; body (and trailers) may follow."""
    MUST_CLOSE: Final = "MUST_CLOSE"
    """The last response of this connection is complete: close the transport."""
    ERROR: Final = "ERROR"
    """A response was abandoned half-way; the connection must be closed."""


_R = ReaderState
_W = WriterState

READER_TABLE: dict[tuple[str, str], str] = {
    (_R.IDLE, "head"): _R.BODY,
    (_R.IDLE, "switch"): _R.SWITCHED,
    (_R.IDLE, "eof"): _R.CLOSED,
    (_R.BODY, "end"): _R.IDLE,
    (_R.BODY, "end_last"): _R.MUST_CLOSE,
    (_R.MUST_CLOSE, "eof"): _R.CLOSED,
    (_R.SWITCHED, "eof"): _R.SWITCHED,
}

WRITER_TABLE: dict[tuple[str, str], str] = {
    (_W.IDLE, "continue"): _W.IDLE,
    (_W.IDLE, "head"): _W.SEND_BODY,
    (_W.IDLE, "error_response"): _W.MUST_CLOSE,
    (_W.SEND_BODY, "data"): _W.SEND_BODY,
    (_W.SEND_BODY, "reset"): _W.IDLE,
    (_W.SEND_BODY, "end"): _W.IDLE,
    (_W.SEND_BODY, "end_last"): _W.MUST_CLOSE,
    (_W.SEND_BODY, "abandon"): _W.ERROR,
    (_W.IDLE, "abandon"): _W.ERROR,
}


# Hot paths look the tables up directly (``TABLE.get(key) or
# reader_transition(...)``) and call these only to raise the error.


def reader_transition(state: str, event: str) -> str:
    """The reader state after ``event``; RemoteProtocolError if not allowed."""
    try:
        return READER_TABLE[state, event]
    except KeyError:
        raise RemoteProtocolError(f"unexpected {event!r} while reader is {state}") from None


def writer_transition(state: str, event: str) -> str:
    """The writer state after ``event``; LocalProtocolError if not allowed."""
    try:
        return WRITER_TABLE[state, event]
    except KeyError:
        raise LocalProtocolError(f"cannot {event!r} while writer is {state}", 500) from None
