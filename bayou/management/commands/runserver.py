"""``manage.py runserver`` serving ASGI (HTTP and WebSocket) through bayou's server.

Installed by listing ``"bayou"`` in ``INSTALLED_APPS`` before
``django.contrib.staticfiles``. It keeps Django's options (``addrport``,
``--ipv6``, ``--noreload``, ``--nothreading``, ``--skip-checks``) and its
autoreloader, and adds daphne's:

``--noasgi``                         run Django's plain WSGI development server instead
``--http_timeout N``                 503 for requests without a response after N seconds
``--websocket_handshake_timeout N``  the app must accept/deny a WebSocket within N seconds
``--websocket-max-message-size N``   incoming message limit in bytes (0 = unlimited)
``--websocket-max-frame-size N``     incoming frame limit in bytes (0 = unlimited)
``--nostatic`` / ``--insecure``      static files, as with ``django.contrib.staticfiles``

Requests are logged on the ``django.channels.server`` logger in daphne's format
(``HTTP GET / 200 [0.01, 127.0.0.1:50000]``), so existing logging configuration
keeps working.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.core.management.base import CommandError, CommandParser
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import connections
from django.utils import autoreload
from django.utils.module_loading import import_string

import bayou
from bayou.conf import bayou_settings
from bayou.protocol.limits import Limits
from bayou.server.config import Config

__all__ = ["Command", "RequestLogger", "get_default_application"]

logger = logging.getLogger("django.channels.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STATICFILES = "django.contrib.staticfiles"


def get_default_application() -> Any:
    """Import and return ``settings.ASGI_APPLICATION``.

    Raises ``ImproperlyConfigured`` when the setting is missing or cannot be imported.
    """
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise ImproperlyConfigured("Cannot find ASGI_APPLICATION setting.")
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"Cannot import ASGI_APPLICATION {path!r}: {exc}") from exc


class RequestLogger:
    """ASGI middleware writing one log line per HTTP response and WebSocket step.

    Lines and levels follow daphne's ``runserver`` so log filters written for it
    still match: ``HTTP <method> <path> <status> [<seconds>, <client>]`` at INFO
    (WARNING for 4xx, ERROR for 5xx) and ``WebSocket HANDSHAKING|CONNECT|REJECT|
    DISCONNECT <path> [<client>]`` at INFO. Other scope types pass through.
    """

    def __init__(self, app: ASGIApp, log: logging.Logger = logger) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        status: int | None = None
        logged = False

        def log(final_status: int) -> None:
            nonlocal logged
            logged = True
            level = logging.INFO
            if final_status >= 500:
                level = logging.ERROR
            elif final_status >= 400:
                level = logging.WARNING
            self.log.log(
                level,
                "HTTP %(method)s %(path)s %(status)s [%(time_taken).2f, %(client)s]",
                {
                    "method": scope.get("method", "-"),
                    "path": _path(scope),
                    "status": final_status,
                    "time_taken": time.monotonic() - started,
                    "client": _client(scope),
                },
            )

        async def logging_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and status is not None
                and not logged
            ):
                log(status)

        try:
            await self.app(scope, receive, logging_send)
        except BaseException:
            if not logged:
                # The server answers 500 for an app that failed before responding.
                log(500 if status is None else status)
            raise

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False
        finished = False

        def log(action: str) -> None:
            self.log.info(
                "WebSocket %(action)s %(path)s [%(client)s]",
                {"action": action, "path": _path(scope), "client": _client(scope)},
            )

        async def logging_receive() -> Message:
            nonlocal finished
            message = await receive()
            if message["type"] == "websocket.connect":
                log("HANDSHAKING")
            elif message["type"] == "websocket.disconnect" and not finished:
                finished = True
                log("DISCONNECT" if accepted else "REJECT")
            return message

        async def logging_send(message: Message) -> None:
            nonlocal accepted, finished
            await send(message)
            kind = message["type"]
            if kind == "websocket.accept" and not accepted:
                accepted = True
                log("CONNECT")
            elif kind in ("websocket.close", "websocket.http.response.start") and not finished:
                finished = True
                log("DISCONNECT" if accepted else "REJECT")

        await self.app(scope, logging_receive, logging_send)


def _path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    query = scope.get("query_string", b"")
    if query:
        path += "?" + bytes(query).decode("latin-1")
    return path


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if client:
        return f"{client[0]}:{client[1]}"
    return "-"


class Command(RunserverCommand):
    help = "Starts a development server for HTTP and WebSocket (ASGI) with bayou."
    protocol = "http"

    # Set by Django's handle() from the addrport argument.
    addr: str
    port: str
    use_asgi: bool = True
    use_ipv6: bool
    _raw_ipv6: bool

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's WSGI development server instead of bayou (no WebSockets).",
        )
        parser.add_argument(
            "--http_timeout",
            action="store",
            dest="http_timeout",
            type=int,
            default=None,
            help="Seconds a request may wait for a response before getting 503 (default: none).",
        )
        parser.add_argument(
            "--websocket_handshake_timeout",
            action="store",
            dest="websocket_handshake_timeout",
            type=int,
            default=None,
            help="Seconds the application has to accept or deny a WebSocket (default: 5).",
        )
        parser.add_argument(
            "--websocket-max-message-size",
            action="store",
            dest="websocket_max_message_size",
            type=int,
            default=None,
            help=(
                "Largest incoming WebSocket message in bytes, 0 = unlimited (default: setting "
                "BAYOU_WEBSOCKET_MAX_MESSAGE_SIZE or DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE, or 1 MiB)."
            ),
        )
        parser.add_argument(
            "--websocket-max-frame-size",
            action="store",
            dest="websocket_max_frame_size",
            type=int,
            default=None,
            help=(
                "Largest incoming WebSocket frame in bytes, 0 = unlimited (default: setting "
                "BAYOU_WEBSOCKET_MAX_FRAME_SIZE or DAPHNE_WEBSOCKET_MAX_FRAME_SIZE, or 1 MiB)."
            ),
        )
        if apps.is_installed(_STATICFILES):
            # The same switches staticfiles' own runserver has, which this one replaces.
            parser.add_argument(
                "--nostatic",
                action="store_false",
                dest="use_static_handler",
                help="Do NOT serve static files at STATIC_URL.",
            )
            parser.add_argument(
                "--insecure",
                action="store_true",
                dest="insecure_serving",
                help="Serve static files even if DEBUG is False.",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        self.use_asgi = bool(options.get("use_asgi", True))
        if self.use_asgi and not getattr(settings, "ASGI_APPLICATION", None):
            raise CommandError(
                "You have not set ASGI_APPLICATION, which is needed to run the server."
            )
        super().handle(*args, **options)

    def _serve_static(self, options: dict[str, Any]) -> bool:
        return (
            apps.is_installed(_STATICFILES)
            and bool(options.get("use_static_handler", True))
            and (settings.DEBUG or bool(options.get("insecure_serving", False)))
        )

    def get_handler(self, *args: Any, **options: Any) -> WSGIHandler:
        """The WSGI handler for ``--noasgi``, serving static files like staticfiles does."""
        handler = super().get_handler(*args, **options)
        if self._serve_static(options):
            from django.contrib.staticfiles.handlers import StaticFilesHandler

            return StaticFilesHandler(handler)
        return handler

    def get_application(self, options: dict[str, Any]) -> ASGIApp:
        """The ASGI application to serve: ``ASGI_APPLICATION`` wrapped for static
        files (when enabled) and request logging."""
        from asgiref.compatibility import guarantee_single_callable

        application: Any = guarantee_single_callable(  # type: ignore[no-untyped-call]
            get_default_application()
        )
        if self._serve_static(options):
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            application = ASGIStaticFilesHandler(application)
        return RequestLogger(application)

    def build_config(self, application: ASGIApp, options: dict[str, Any]) -> Config:
        """The server ``Config`` for ``application`` from the command's options."""
        handshake_timeout = options.get("websocket_handshake_timeout")
        if handshake_timeout is None:
            handshake_timeout = bayou_settings.WEBSOCKET_HANDSHAKE_TIMEOUT
        max_message = options.get("websocket_max_message_size")
        if max_message is None:
            max_message = bayou_settings.WEBSOCKET_MAX_MESSAGE_SIZE
        max_frame = options.get("websocket_max_frame_size")
        if max_frame is None:
            max_frame = bayou_settings.WEBSOCKET_MAX_FRAME_SIZE
        return Config(
            app=application,
            host=self.addr,
            port=int(self.port),
            root_path=getattr(settings, "FORCE_SCRIPT_NAME", None) or "",
            http_timeout=options.get("http_timeout"),
            websocket_connect_timeout=float(handshake_timeout),
            limits=dataclasses.replace(
                Limits(), ws_max_message_size=int(max_message), ws_max_frame_size=int(max_frame)
            ),
            # RequestLogger writes the development log instead of the access log.
            access_log=False,
            verbosity=int(options.get("verbosity", 1)),
        )

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options.get("use_asgi", True):
            from bayou.checks import asgi_application_not_needed

            with asgi_application_not_needed():
                super().inner_run(*args, **options)
            return
        # An exception silenced in the reloader's parent is raised here, in the child.
        autoreload.raise_last_exception()
        shutdown_message = options.get("shutdown_message", "")

        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()

        config = self.build_config(self.get_application(options), options)
        # Under the autoreloader this runs in a secondary thread, where signal
        # handlers cannot be installed; the reloader's main thread handles CTRL-C.
        install_signals = not options["use_reloader"] and (
            threading.current_thread() is threading.main_thread()
        )
        try:
            self._run_server(config, install_signals)
        except OSError as exc:
            messages = {
                errno.EACCES: "You don't have permission to access that port.",
                errno.EADDRINUSE: "That port is already in use.",
                errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
            }
            self.stderr.write(f"Error: {messages.get(exc.errno or 0, exc)}")
            # os._exit: sys.exit would only end this thread under the reloader.
            os._exit(1)
        except KeyboardInterrupt:
            pass
        if shutdown_message:
            self.stdout.write(shutdown_message)
        sys.exit(0)

    def _run_server(self, config: Config, install_signals: bool) -> None:
        from bayou.server.server import Server, StartupError, loop_factory

        server = Server(config)

        async def main() -> None:
            try:
                await server.startup()
            except StartupError as exc:
                if isinstance(exc.__cause__, OSError):
                    raise exc.__cause__ from None
                raise CommandError(str(exc)) from exc
            ports = [port for _, port in server.bound_addresses] or [config.port]
            self.on_bind(ports[0])

            loop = asyncio.get_running_loop()
            stop = asyncio.Event()

            def on_signal(sig: signal.Signals) -> None:
                # A second signal reaches handle_exit again and forces the shutdown.
                server.handle_exit(sig, None)
                stop.set()

            installed: list[signal.Signals] = []
            if install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, on_signal, sig)
                    installed.append(sig)
            try:
                # Without signal handlers (under the autoreloader) this waits until
                # the reloader's main thread ends or restarts the process.
                await stop.wait()
            finally:
                try:
                    await server.shutdown()
                finally:
                    for sig in installed:
                        loop.remove_signal_handler(sig)

        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            runner.run(main())

    def on_bind(self, server_port: int) -> None:
        """Print the banner once the listening socket is bound."""
        if not self.use_asgi:
            super().on_bind(server_port)
            return
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        if self._raw_ipv6:
            addr = f"[{self.addr}]"
        elif self.addr == "0":
            addr = "0.0.0.0"
        else:
            addr = self.addr
        now = datetime.now().strftime("%B %d, %Y - %X")
        self.stdout.write(
            f"{now}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting ASGI/bayou version {bayou.__version__} development server"
            f" at {self.protocol}://{addr}:{server_port}/\n"
            f"Quit the server with {quit_command}."
        )
