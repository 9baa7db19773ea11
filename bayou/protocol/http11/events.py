"""Events produced by the HTTP/1.1 connection object.

``Request`` is also what the WebSocket handshake consumes: HTTP is parsed
once, and the upgrade is validated from this object (after wsproto).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NEED_DATA", "PAUSED", "ConnectionClosed", "Data", "EndOfMessage", "Request"]


@dataclass(slots=True)
class Request:
    """A fully parsed and validated request head.

    ``headers`` keeps the order and duplicates as received; names are
    lower-cased, values are the raw bytes with surrounding whitespace removed.
    ``target`` is the raw request-target (path and query) as sent.
    """

    method: bytes
    target: bytes
    http_version: str  # "1.0" or "1.1"
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool = True
    """Whether the connection may be reused after this request (HTTP/1.1
    without ``Connection: close``, or HTTP/1.0 with ``Connection: keep-alive``)."""
    upgrade: bytes | None = None
    """Lower-cased ``Upgrade`` token when the request asks for one with
    ``Connection: upgrade`` (e.g. ``b"websocket"``), else None."""
    expect_continue: bool = False
    """``Expect: 100-continue`` on an HTTP/1.1 request with a body."""


# --- Added by the HTTP/1.1 owner (additive): the rest of the event vocabulary.


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of the request body, already de-chunked. Never empty."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request body is complete.

    ``trailers`` holds the chunked trailer fields (lower-cased names), never
    merged into ``Request.headers``; empty for non-chunked bodies.
    """

    trailers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its sending side between two requests (a clean EOF)."""


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")
"""``next_event()``: nothing more can be parsed until ``receive_data()`` is called."""

PAUSED = _Sentinel("PAUSED")
"""``next_event()``: the reader stopped for good on this connection — after a
request that ends it (``Connection: close``, HTTP/1.0), or after a protocol
switch (``Connection.trailing_data`` then holds the bytes that followed)."""
