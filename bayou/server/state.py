"""State shared by every connection of one server process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from bayou.server.access_log import AccessLog

__all__ = ["Connection", "ServerState"]


class Connection(Protocol):
    """What the server needs from a live connection (HTTP or WebSocket)."""

    def shutdown(self) -> None:
        """Begin a graceful close: HTTP closes once the in-flight response is
        done (immediately when idle); a WebSocket sends close 1001."""

    def abort(self) -> None:
        """Close the transport now and cancel the application task."""


@dataclass
class ServerState:
    connections: set[Connection] = field(default_factory=set)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    lifespan_state: dict[str, Any] = field(default_factory=dict)
    """Filled by lifespan startup; each scope gets a shallow copy as ``scope["state"]``."""
    access_log: AccessLog = field(default_factory=lambda: AccessLog(False))
    shutting_down: bool = False
    total_requests: int = 0
