"""Security helpers for WebSocket connections (see :mod:`bayou.security.websocket`)."""

__all__: list[str] = []
