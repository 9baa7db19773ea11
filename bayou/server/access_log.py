"""Access log in the NCSA common log format, through ``logging`` ('bayou.access').

HTTP:      127.0.0.1:5000 - - [21/Nov/2026:03:24:11 +0000] "GET /path?q HTTP/1.1" 200 1234 0.0012
WebSocket: 127.0.0.1:5000 - - [21/Nov/2026:03:24:11 +0000] "WSCONNECT /ws/chat/" - - 0.0001
(actions: WSCONNECTING, WSCONNECT, WSREJECT, WSDISCONNECT, as daphne logs them).
"""

from __future__ import annotations

import logging
import time

__all__ = ["AccessLog"]

logger = logging.getLogger("bayou.access")


def _client(client: object) -> str:
    if isinstance(client, (tuple, list)) and len(client) == 2:
        return f"{client[0]}:{client[1]}"
    return "-"


def _now() -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())


class AccessLog:
    """Writes one line per HTTP response and per WebSocket state change.

    Disabled instances cost one attribute check per call.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and logger.isEnabledFor(logging.INFO)

    def http(
        self,
        client: object,
        method: str,
        target: str,
        http_version: str,
        status: int,
        size: int,
        started: float,
    ) -> None:
        if not self.enabled:
            return
        logger.info(
            '%s - - [%s] "%s %s HTTP/%s" %d %d %.4f',
            _client(client),
            _now(),
            method,
            target,
            http_version,
            status,
            size,
            time.monotonic() - started,
        )

    def websocket(self, client: object, action: str, path: str, started: float) -> None:
        if not self.enabled:
            return
        logger.info(
            '%s - - [%s] "%s %s" - - %.4f',
            _client(client),
            _now(),
            action,
            path,
            time.monotonic() - started,
        )
