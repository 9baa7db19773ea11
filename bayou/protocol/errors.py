"""Protocol errors, after h11: who broke the protocol, and what to answer."""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class for protocol violations.

    ``status_hint`` is the HTTP status (400, 431, 501, 505, ...) or, for a
    WebSocket, the close code (1002, 1007, 1009, ...) to answer with.
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids (malformed bytes, limits exceeded)."""


class LocalProtocolError(ProtocolError):
    """Our side (usually the ASGI application) tried to do something the protocol forbids."""
