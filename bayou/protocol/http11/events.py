"""Events produced by the HTTP/1.1 connection object.

``Request`` is also what the WebSocket handshake consumes: HTTP is parsed
once, and the upgrade is validated from this object (after wsproto).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Request"]


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
