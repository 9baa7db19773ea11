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

__all__ = ["Config", "Endpoint", "import_app", "parse_endpoint"]

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


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place to listen: a TCP address, a UNIX socket path or an inherited fd.

    ``ssl_certfile``/``ssl_keyfile`` set means TLS on this endpoint only.
    """

    kind: Literal["tcp", "unix", "fd"]
    host: str = "127.0.0.1"
    port: int = 8000
    path: str = ""
    fileno: int = -1
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @property
    def is_ssl(self) -> bool:
        return self.ssl_certfile is not None


def _split_description(description: str) -> list[str]:
    # Twisted endpoint syntax: fields separated by ':', with '\:' an escaped colon
    # (needed for IPv6 interfaces: tcp:port=80:interface=\:\:1).
    parts: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


# Twisted options that are meaningless for bayou but appear in existing daphne
# command lines; accepted and ignored rather than breaking a migration.
_IGNORED_OPTIONS = frozenset({"backlog", "mode", "lockfile", "wantPeer", "extraCertChain"})


def parse_endpoint(description: str) -> Endpoint:
    """Parse a daphne/Twisted endpoint string.

    Supported: ``tcp:PORT``, ``tcp:port=P:interface=H``, ``tcp6:...``,
    ``unix:PATH`` / ``unix:address=PATH``, ``fd:N`` / ``fd:fileno=N`` and
    ``ssl:port=P:interface=H:privateKey=KEY:certKey=CERT`` (``certKey`` defaults
    to ``privateKey``, as in Twisted). Raises ValueError on anything else.
    """
    kind, *fields = _split_description(description)
    positional: list[str] = []
    options: dict[str, str] = {}
    for item in fields:
        key, eq, value = item.partition("=")
        if eq:
            options[key] = value
        else:
            positional.append(item)
    for key in _IGNORED_OPTIONS:
        options.pop(key, None)

    def take(key: str, default: str | None = None) -> str | None:
        value = options.pop(key, None)
        if value is None and positional:
            value = positional.pop(0)
        return value if value is not None else default

    endpoint: Endpoint
    if kind in ("tcp", "tcp6", "ssl"):
        port = take("port")
        if port is None:
            raise ValueError(f"Endpoint {description!r}: missing port")
        default_host = "::" if kind == "tcp6" else "0.0.0.0"
        host = options.pop("interface", None) or default_host
        certfile: str | None = None
        keyfile: str | None = None
        if kind == "ssl":
            keyfile = options.pop("privateKey", None)
            certfile = options.pop("certKey", None) or keyfile
            if keyfile is None:
                raise ValueError(f"Endpoint {description!r}: ssl needs privateKey=")
        endpoint = Endpoint(
            "tcp",
            host=host.strip("[]"),
            port=int(port),
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
    elif kind == "unix":
        path = options.pop("address", "") or options.pop("path", "")
        path = path or (positional.pop(0) if positional else "")
        if not path:
            raise ValueError(f"Endpoint {description!r}: missing path")
        endpoint = Endpoint("unix", path=path)
    elif kind == "fd":
        fileno = take("fileno")
        if fileno is None:
            raise ValueError(f"Endpoint {description!r}: missing fileno")
        endpoint = Endpoint("fd", fileno=int(fileno))
    else:
        raise ValueError(f"Endpoint {description!r}: unsupported type {kind!r}")
    if options or positional:
        raise ValueError(f"Endpoint {description!r}: unexpected {sorted(options) or positional}")
    return endpoint


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
    lifespan_shutdown_timeout: float | None = 30.0
    """On shutdown, the application gets this long to answer ``lifespan.shutdown``;
    then its lifespan task is cancelled (None: wait forever)."""

    # Behaviour
    server_name: str | None = "bayou"
    """Value of the ``Server`` response header; None/"" sends none."""
    access_log: bool = True
    access_log_path: str | None = None  # "-" = stdout; None = the 'bayou.access' logger
    websocket_per_message_deflate: bool = True
    websocket_deflate_min_size: int = 64
    """With permessage-deflate negotiated, outgoing messages shorter than this
    (bytes) are sent uncompressed: deflating a few bytes costs CPU, saves nothing."""
    limits: Limits = field(default_factory=Limits)
    workers: int = 1
    reload: bool = False
    reload_dirs: list[str] = field(default_factory=list)
    verbosity: int = 1
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    log_fmt: str | None = None
    """``logging`` format for the CLI's handler; None = bayou's default."""

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

    def listen_endpoints(self) -> list[Endpoint]:
        """Where to listen, in order.

        ``endpoints`` strings, ``uds`` and ``fd`` are used when given; the
        ``host``/``port`` pair is used only when none of them is (the CLI adds a
        ``tcp:`` endpoint when ``--bind``/``--port`` are combined with them).
        The ``ssl_*`` settings apply to ``host``/``port``, ``uds`` and ``fd``;
        ``ssl:`` endpoint strings carry their own certificate.
        """
        cert, key = self.ssl_certfile, self.ssl_keyfile
        found = [parse_endpoint(e) for e in self.endpoints]
        if self.uds:
            found.append(Endpoint("unix", path=self.uds, ssl_certfile=cert, ssl_keyfile=key))
        if self.fd is not None:
            found.append(Endpoint("fd", fileno=self.fd, ssl_certfile=cert, ssl_keyfile=key))
        if not found:
            found.append(
                Endpoint("tcp", host=self.host, port=self.port, ssl_certfile=cert, ssl_keyfile=key)
            )
        return found

    def load_app(self) -> ASGIApp:
        """Return the application as an ASGI 3 single callable (import paths resolved)."""
        app = import_app(self.app) if isinstance(self.app, str) else self.app
        return guarantee_single_callable(app)  # type: ignore[no-untyped-call]

    def ssl_context(self, endpoint: Endpoint | None = None) -> ssl.SSLContext | None:
        """The server-side TLS context for ``endpoint`` (default: the ``ssl_*``
        settings), or None when that listener is plain TCP."""
        certfile = endpoint.ssl_certfile if endpoint is not None else self.ssl_certfile
        keyfile = endpoint.ssl_keyfile if endpoint is not None else self.ssl_keyfile
        if certfile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certfile, keyfile, self.ssl_keyfile_password)
        if self.ssl_ca_certs:
            ctx.load_verify_locations(self.ssl_ca_certs)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx
