"""Server configuration: one object, validated once, shared by every connection."""

from __future__ import annotations

import importlib
import logging
import os
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from asgiref.compatibility import guarantee_single_callable

from bayou.protocol.limits import Limits

__all__ = ["Config", "import_app"]

logger = logging.getLogger("bayou.server")

ASGIApp = Any  # an ASGI 3 callable; typed loosely so Django/asgiref apps fit


def import_app(path: str) -> ASGIApp:
    """Import ``module.path:attr.path`` (daphne/uvicorn syntax) and return the object.

    ``module.path`` alone means the attribute ``application``. The current
    directory is put first on ``sys.path`` as daphne does.
    """
    module_name, _, attrs = path.partition(":")
    if not module_name:
        raise ValueError(f"Invalid application path {path!r}: expected 'module:attribute'")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    obj: Any = module
    for attr in (attrs or "application").split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ValueError(
                f"Invalid application path {path!r}: {attr!r} not found in {module_name}"
            ) from None
    return obj


@dataclass
class Config:
    """Everything the server needs to know; see docs/reference/settings.md."""

    app: ASGIApp
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    endpoints: list[str] = field(default_factory=list)
    backlog: int = 2048

    # TLS
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None

    # ASGI / proxying
    root_path: str = ""
    proxy_headers: bool = False
    forwarded_allow_ips: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    proxy_headers_host: str | None = None  # daphne: custom client-address header name
    proxy_headers_port: str | None = None  # daphne: custom client-port header name
    lifespan: Literal["auto", "on", "off"] = "auto"

    # Timeouts (seconds; None = no limit)
    http_timeout: float | None = None
    """A request whose response has not started after this long gets 503."""
    request_head_timeout: float = 10.0
    """A request head (line + headers) must complete within this; slow clients are cut off."""
    keep_alive_timeout: float = 5.0
    """Idle keep-alive connections are closed after this."""
    websocket_timeout: float | None = 86400.0
    """Maximum lifetime of a WebSocket connection."""
    websocket_connect_timeout: float = 5.0
    """The application must accept or deny a WebSocket within this."""
    ping_interval: float | None = 20.0
    """Idle seconds before a keepalive ping; None disables pings (Autobahn runs)."""
    ping_timeout: float = 30.0
    """Close the WebSocket when a ping is not answered within this."""
    application_close_timeout: float = 10.0
    """Seconds an application may run after disconnect before it is cancelled."""
    graceful_timeout: float = 30.0
    """On shutdown, in-flight HTTP requests get this long to finish."""

    # Behaviour
    server_name: str | None = "bayou"
    """Value of the ``Server`` response header; None/"" sends none."""
    access_log: bool = True
    access_log_path: str | None = None  # "-" = stdout; None = the 'bayou.access' logger
    websocket_per_message_deflate: bool = True
    limits: Limits = field(default_factory=Limits)
    workers: int = 1
    reload: bool = False
    reload_dirs: list[str] = field(default_factory=list)
    verbosity: int = 1
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"

    def __post_init__(self) -> None:
        if self.root_path.endswith("/"):
            self.root_path = self.root_path.rstrip("/")
        if (self.ssl_keyfile is None) != (self.ssl_certfile is None):
            raise ValueError("--ssl-keyfile and --ssl-certfile go together")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.ping_interval is not None and self.ping_interval <= 0:
            self.ping_interval = None

    @property
    def is_ssl(self) -> bool:
        return self.ssl_certfile is not None

    def load_app(self) -> ASGIApp:
        """Return the application as an ASGI 3 single callable (import paths resolved)."""
        app = import_app(self.app) if isinstance(self.app, str) else self.app
        return guarantee_single_callable(app)  # type: ignore[no-untyped-call]

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.is_ssl:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        assert self.ssl_certfile is not None
        ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_keyfile_password)
        if self.ssl_ca_certs:
            ctx.load_verify_locations(self.ssl_ca_certs)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx
