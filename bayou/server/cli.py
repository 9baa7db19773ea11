"""The ``bayou`` command (also ``python -m bayou.server``).

Accepts daphne's command line where it makes sense, so ``daphne`` can be
replaced by ``bayou`` in a deployment script; every flag is listed in
docs/reference/server.md. Exit codes: 0 after a clean shutdown, 1 when the
server cannot listen (or load the application / TLS files), 2 for a bad
command line, 3 when the application's lifespan startup failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import bayou
from bayou.protocol.limits import Limits
from bayou.server.config import Config

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "CommandLineInterface",
    "build_config",
    "build_endpoint_description_strings",
    "build_parser",
    "main",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

# daphne's names for two WebSocket limits, kept for drop-in compatibility.
_LIMIT_ALIASES = {
    "ws_max_message_size": ["--websocket-max-message-size", "--limit-max-message"],
    "ws_max_frame_size": ["--websocket-max-frame-size", "--limit-max-frame"],
}

# A timeout of -1 means "no limit" in daphne; for settings that must stay a
# number, "no limit" is this many seconds (about 31 years).
_FOREVER = 1e9


def _limit_flags(name: str) -> list[str]:
    return [f"--limit-{name.replace('_', '-')}", *_LIMIT_ALIASES.get(name, [])]


def _limit_fields() -> list[tuple[str, type[int] | type[float]]]:
    """The numeric ``Limits`` fields (each gets a ``--limit-*`` flag)."""
    defaults = Limits()
    found: list[tuple[str, type[int] | type[float]]] = []
    for limit in dataclasses.fields(Limits):
        value = getattr(defaults, limit.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append((limit.name, type(value)))
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--limit-*`` flags are generated from ``Limits``."""
    parser = argparse.ArgumentParser(
        prog="bayou",
        description="bayou ASGI server (HTTP/1.1 and WebSocket).",
    )
    add = parser.add_argument
    add("application", help="The application to serve, as path.to.module:instance.path")
    add("--version", action="version", version=f"bayou {bayou.__version__}")

    where = parser.add_argument_group("where to listen")
    where.add_argument("-b", "--bind", dest="host", help="Address to bind (default 127.0.0.1)")
    where.add_argument("-p", "--port", type=int, help="Port to bind (default 8000)")
    where.add_argument(
        "-u", "--unix-socket", dest="uds", metavar="PATH", help="Bind to a UNIX socket path"
    )
    where.add_argument(
        "--fd", type=int, dest="fd", metavar="N", help="Adopt this listening socket fd"
    )
    where.add_argument(
        "-e",
        "--endpoint",
        dest="endpoints",
        metavar="STRING",
        action="append",
        default=[],
        help="daphne/Twisted endpoint: tcp:port=P:interface=H, unix:PATH, fd:fileno=N, "
        "ssl:port=P:privateKey=KEY:certKey=CERT (repeatable)",
    )
    where.add_argument("--backlog", type=int, default=2048, help="listen() backlog")
    where.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    where.add_argument("--ssl-certfile", help="TLS certificate chain (PEM)")
    where.add_argument("--ssl-keyfile-password", help="Password of --ssl-keyfile")
    where.add_argument("--ssl-ca-certs", help="CA bundle for client certificates")

    asgi = parser.add_argument_group("ASGI and proxies")
    asgi.add_argument("--root-path", default="", help="ASGI root_path (script name)")
    asgi.add_argument(
        "--proxy-headers",
        action="store_true",
        help="Trust X-Forwarded-For/-Port/-Proto from --forwarded-allow-ips",
    )
    asgi.add_argument(
        "--proxy-headers-host", help="Header carrying the client address (needs --proxy-headers)"
    )
    asgi.add_argument(
        "--proxy-headers-port", help="Header carrying the client port (needs --proxy-headers)"
    )
    asgi.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1,::1",
        help="Comma-separated proxy addresses trusted for proxy headers; '*' trusts all",
    )
    asgi.add_argument(
        "--lifespan",
        choices=["auto", "on", "off"],
        default="auto",
        help="ASGI lifespan: 'auto' tolerates apps without support (default)",
    )

    timeouts = parser.add_argument_group("timeouts (seconds)")
    timeouts.add_argument(
        "-t", "--http-timeout", type=float, help="503 when no response has started by then"
    )
    timeouts.add_argument(
        "--websocket_timeout",
        "--websocket-timeout",
        dest="websocket_timeout",
        type=float,
        default=86400.0,
        help="Maximum WebSocket lifetime; -1 = unlimited",
    )
    timeouts.add_argument(
        "--websocket_connect_timeout",
        "--websocket-connect-timeout",
        dest="websocket_connect_timeout",
        type=float,
        default=5.0,
        help="Time for the application to accept a WebSocket; -1 = unlimited",
    )
    timeouts.add_argument(
        "--ping-interval", type=float, default=20.0, help="WebSocket keepalive ping; 0 disables"
    )
    timeouts.add_argument("--ping-timeout", type=float, default=30.0, help="Pong deadline")
    timeouts.add_argument(
        "--application-close-timeout",
        type=float,
        default=10.0,
        help="How long an application may run after disconnect",
    )
    timeouts.add_argument(
        "--graceful-timeout", type=float, default=30.0, help="Shutdown grace for in-flight requests"
    )
    timeouts.add_argument(
        "--lifespan-shutdown-timeout",
        type=float,
        default=30.0,
        help="How long lifespan shutdown may take before it is cancelled (<= 0: no limit)",
    )
    timeouts.add_argument("--request-head-timeout", type=float, default=10.0)
    timeouts.add_argument("--keep-alive-timeout", type=float, default=5.0)

    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("-s", "--server-name", default="bayou", help="Server header value")
    behaviour.add_argument(
        "--no-server-name",
        dest="server_name",
        action="store_const",
        const="",
        help="Send no Server header",
    )
    behaviour.add_argument(
        "--no-ws-deflate",
        dest="ws_deflate",
        action="store_false",
        help="Disable permessage-deflate",
    )
    behaviour.add_argument("--workers", type=int, default=1, help="Worker processes")
    behaviour.add_argument(
        "--reload", action="store_true", help="Restart when .py files change (development)"
    )
    behaviour.add_argument(
        "--reload-dir",
        dest="reload_dirs",
        metavar="DIR",
        action="append",
        default=[],
        help="Directory to watch with --reload (repeatable; default: current directory)",
    )
    behaviour.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="Event loop"
    )

    logs = parser.add_argument_group("logging")
    logs.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=range(4),
        default=1,
        help="0 warnings, 1 info, 2 debug, 3 debug + asyncio debug",
    )
    logs.add_argument("--log-fmt", help="logging format string")
    logs.add_argument(
        "--access-log",
        nargs="?",
        const="-",
        metavar="PATH",
        help="Access log file, or '-' for stdout (default: stdout unless --verbosity 0)",
    )
    logs.add_argument("--no-access-log", action="store_true", help="Disable the access log")

    limits = parser.add_argument_group("limits (bytes or counts; see docs/reference/settings.md)")
    defaults = Limits()
    for name, kind in _limit_fields():
        limits.add_argument(
            *_limit_flags(name),
            dest=f"limit__{name}",
            type=kind,
            default=None,
            metavar="N",
            help=f"Limits.{name} (default {getattr(defaults, name)})",
        )
    return parser


def _endpoint_host(host: str) -> str:
    return host.replace(":", "\\:")


def build_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config:
    """Turn parsed arguments into a Config (``parser.error`` on inconsistencies)."""
    if (args.proxy_headers_host or args.proxy_headers_port) and not args.proxy_headers:
        parser.error("--proxy-headers has to be passed for this parameter.")
    if (args.ssl_keyfile is None) != (args.ssl_certfile is None):
        parser.error("--ssl-keyfile and --ssl-certfile go together")
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    host = args.host.strip("[]") if args.host else None
    tcp_requested = host is not None or args.port is not None
    host = host or DEFAULT_HOST
    port = args.port if args.port is not None else DEFAULT_PORT
    endpoints = list(args.endpoints)
    if tcp_requested and (args.uds or args.fd is not None or endpoints):
        # Config uses host/port only when nothing else is given; combined with
        # other listeners, TCP becomes an explicit endpoint.
        if args.ssl_certfile:
            endpoints.append(
                f"ssl:port={port}:interface={_endpoint_host(host)}"
                f":privateKey={args.ssl_keyfile}:certKey={args.ssl_certfile}"
            )
        else:
            endpoints.append(f"tcp:port={port}:interface={_endpoint_host(host)}")

    overrides: dict[str, Any] = {}
    for name, _ in _limit_fields():
        value = getattr(args, f"limit__{name}")
        if value is not None:
            if value < 0:
                parser.error(f"{_limit_flags(name)[0]} must not be negative")
            overrides[name] = value

    websocket_timeout = args.websocket_timeout
    connect_timeout = args.websocket_connect_timeout
    try:
        return Config(
            app=args.application,
            host=host,
            port=port,
            uds=args.uds,
            fd=args.fd,
            endpoints=endpoints,
            backlog=args.backlog,
            ssl_keyfile=args.ssl_keyfile,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile_password=args.ssl_keyfile_password,
            ssl_ca_certs=args.ssl_ca_certs,
            root_path=args.root_path,
            proxy_headers=args.proxy_headers,
            forwarded_allow_ips=[ip.strip() for ip in args.forwarded_allow_ips.split(",")],
            proxy_headers_host=args.proxy_headers_host,
            proxy_headers_port=args.proxy_headers_port,
            lifespan=args.lifespan,
            http_timeout=args.http_timeout,
            request_head_timeout=args.request_head_timeout,
            keep_alive_timeout=args.keep_alive_timeout,
            websocket_timeout=None if websocket_timeout < 0 else websocket_timeout,
            websocket_connect_timeout=_FOREVER if connect_timeout < 0 else connect_timeout,
            ping_interval=args.ping_interval if args.ping_interval > 0 else None,
            ping_timeout=args.ping_timeout,
            application_close_timeout=args.application_close_timeout,
            graceful_timeout=args.graceful_timeout,
            lifespan_shutdown_timeout=(
                args.lifespan_shutdown_timeout if args.lifespan_shutdown_timeout > 0 else None
            ),
            server_name=args.server_name,
            # daphne: an explicit --access-log always logs; by default access
            # lines go to stdout unless --verbosity 0.
            access_log=not args.no_access_log
            and (args.access_log is not None or args.verbosity >= 1),
            access_log_path=args.access_log or "-",
            websocket_per_message_deflate=args.ws_deflate,
            limits=Limits(**overrides),
            workers=args.workers,
            reload=args.reload,
            reload_dirs=args.reload_dirs,
            verbosity=args.verbosity,
            loop=args.loop,
            log_fmt=args.log_fmt,
        )
    except ValueError as exc:
        parser.error(str(exc))


def build_endpoint_description_strings(
    host: str | None = None,
    port: int | None = None,
    unix_socket: str | None = None,
    file_descriptor: int | None = None,
) -> list[str]:
    """daphne's helper: endpoint strings for a host/port pair, a UNIX socket
    and/or an fd. ``host`` and ``port`` go together (ValueError otherwise)."""
    found: list[str] = []
    if (host is None) != (port is None):
        raise ValueError("TCP binding requires both port and host kwargs.")
    if host is not None:
        found.append(f"tcp:port={port}:interface={_endpoint_host(host.strip('[]'))}")
    if unix_socket:
        found.append(f"unix:{unix_socket}")
    if file_descriptor is not None:
        found.append(f"fd:fileno={file_descriptor}")
    return found


class CommandLineInterface:
    """daphne-compatible entry point object; ``server_class`` is the override point."""

    description = "bayou ASGI server (HTTP/1.1 and WebSocket)."

    def __init__(self) -> None:
        self.parser = build_parser()

    @property
    def server_class(self) -> Any:
        from bayou.server.server import Server

        return Server

    @classmethod
    def entrypoint(cls) -> NoReturn:
        """Run with ``sys.argv[1:]`` and exit with the server's exit code."""
        sys.exit(cls().run(sys.argv[1:]))

    def run(self, args: Sequence[str]) -> int:
        """Parse ``args``, run the server (or supervisor); returns the exit code."""
        config = build_config(self.parser.parse_args(list(args)), self.parser)
        try:
            config.listen_endpoints()
        except ValueError as exc:
            print(f"bayou: error: {exc}", file=sys.stderr)
            return 2
        from bayou.server.logging import configure_logging

        configure_logging(config)
        if config.workers > 1 or config.reload:
            from bayou.server.supervisor import Supervisor

            code: int = Supervisor(config).run()
        else:
            code = self.server_class(config).run()
        return code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: run with ``argv`` (default ``sys.argv[1:]``), exit."""
    sys.exit(CommandLineInterface().run(sys.argv[1:] if argv is None else argv))
