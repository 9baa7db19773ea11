"""Origin checks for WebSocket handshakes (protection against cross-site WebSocket hijacking).

Same API and matching rules as ``channels.security.websocket``. A refused
connection is closed before it is accepted, which the server answers with
HTTP 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import ParseResult, urlparse

from django.conf import settings
from django.utils.http import is_same_domain

from bayou.generic.websocket import AsyncWebsocketConsumer
from bayou.utils import Receive, Scope, Send

__all__ = ["AllowedHostsOriginValidator", "OriginValidator", "WebsocketDenier"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class OriginValidator:
    """Let a WebSocket connection through only if its ``Origin`` header matches a pattern.

    ``allowed_origins`` entries: ``"*"`` (anything, including no Origin
    header), ``"example.com"``, ``".example.com"`` (the domain and its
    subdomains) or ``"https://example.com[:port]"`` (scheme, host and port -
    defaulting to 80/443 - must all match). A missing, empty or unparsable
    Origin is refused unless ``"*"`` is allowed. Non-WebSocket scopes raise
    ``ValueError``.
    """

    def __init__(self, application: Any, allowed_origins: Sequence[str]) -> None:
        self.application = application
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("You cannot use OriginValidator on a non-WebSocket connection")
        parsed_origin: ParseResult | None = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                try:
                    parsed_origin = urlparse(value.decode("latin-1"))
                except ValueError:
                    parsed_origin = None
        if self.valid_origin(parsed_origin):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """True if the connection may proceed."""
        if parsed_origin is None and "*" not in self.allowed_origins:
            return False
        return self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: ParseResult | None) -> bool:
        """True if ``parsed_origin`` matches one of ``allowed_origins``."""
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in self.allowed_origins
        )

    def match_allowed_origin(self, parsed_origin: ParseResult | None, pattern: str) -> bool:
        """True if ``parsed_origin`` matches the single ``pattern``."""
        if parsed_origin is None:
            return False
        try:
            # An Origin with a malformed port is refused even for host-only
            # patterns (Channels ignores the port there); browsers never send one.
            parsed_origin.port  # noqa: B018
            origin_host = parsed_origin.hostname
            parsed_pattern = urlparse(pattern.lower())
            if origin_host is None:
                return False
            if not parsed_pattern.scheme:
                # "example.com" or ".example.com": host only, any scheme and port.
                bare_host = urlparse("//" + pattern).hostname or pattern
                return is_same_domain(origin_host, bare_host)
            pattern_host = parsed_pattern.hostname
            return (
                pattern_host is not None
                and parsed_pattern.scheme == parsed_origin.scheme
                and self.get_origin_port(parsed_origin) == self.get_origin_port(parsed_pattern)
                and is_same_domain(origin_host, pattern_host)
            )
        except ValueError:
            # Malformed port or host in the Origin header: not a match.
            return False

    def get_origin_port(self, origin: ParseResult) -> int | None:
        """The explicit port, else the scheme's default (80/443), else ``None``."""
        if origin.port is not None:
            return origin.port
        return _DEFAULT_PORTS.get(origin.scheme)


def AllowedHostsOriginValidator(application: Any) -> OriginValidator:
    """An :class:`OriginValidator` allowing ``settings.ALLOWED_HOSTS``.

    With ``DEBUG`` on and ``ALLOWED_HOSTS`` empty, allows localhost,
    127.0.0.1 and [::1], as Django does for requests.
    """
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return OriginValidator(application, allowed_hosts)


class WebsocketDenier(AsyncWebsocketConsumer):
    """Refuses every connection: closes before accepting (HTTP 403)."""

    async def connect(self) -> None:
        await self.close()
