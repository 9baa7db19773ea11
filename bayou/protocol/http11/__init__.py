"""Sans-I/O HTTP/1.1 (RFC 9112) for the server side."""

from bayou.protocol.http11.connection import ServerConnection
from bayou.protocol.http11.events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
)

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Request",
    "ServerConnection",
]
