"""Sans-I/O WebSocket (RFC 6455 + RFC 7692 permessage-deflate), server side.

- :mod:`.handshake` validates the upgrade from a parsed HTTP request.
- :mod:`.connection` parses frames into events and frames outgoing messages.
- :mod:`.deflate` negotiates and runs permessage-deflate.
"""

from __future__ import annotations

from bayou.protocol.websocket.connection import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    Event,
    Pong,
    State,
    TextMessage,
    WebSocketConnection,
)
from bayou.protocol.websocket.deflate import PerMessageDeflate, negotiate_deflate
from bayou.protocol.websocket.handshake import (
    Handshake,
    HandshakeError,
    accept_key,
    build_accept_response,
    build_http_response,
    validate_handshake,
)

__all__ = [
    "BinaryMessage",
    "CloseReceived",
    "ConnectionFailed",
    "Event",
    "Handshake",
    "HandshakeError",
    "PerMessageDeflate",
    "Pong",
    "State",
    "TextMessage",
    "WebSocketConnection",
    "accept_key",
    "build_accept_response",
    "build_http_response",
    "negotiate_deflate",
    "validate_handshake",
]
