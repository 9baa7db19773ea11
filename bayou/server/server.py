"""The server process: listeners, lifespan, signals and graceful shutdown.

``Server(config)`` is used three ways:

* in-process (tests, embedding): ``await server.startup()`` ... ``await server.shutdown()``;
* ``await server.serve()``: startup, wait for SIGTERM/SIGINT (or ``handle_exit``),
  shutdown; returns the process exit code;
* ``server.run()``: the blocking entry point the CLI uses (uvloop when installed).

Shutdown order: stop accepting; ask every connection to ``shutdown()``
(WebSockets close with 1001, HTTP finishes its in-flight response); wait up to
``config.graceful_timeout`` for them to go; ``abort()`` the rest; cancel the
leftover application tasks; run lifespan shutdown. A second signal skips the
waiting (forced exit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bayou.server.access_log import AccessLog
from bayou.server.config import Config, Endpoint
from bayou.server.lifespan import Lifespan, LifespanFailure
from bayou.server.state import Connection, ServerState

__all__ = [
    "EXIT_CANNOT_LISTEN",
    "EXIT_OK",
    "EXIT_STARTUP_FAILED",
    "BoundListener",
    "Server",
    "StartupError",
    "bind_listeners",
    "loop_factory",
]

logger = logging.getLogger("bayou.server")

EXIT_OK = 0
EXIT_CANNOT_LISTEN = 1
"""Could not bind/listen, load TLS files or import the application."""
EXIT_STARTUP_FAILED = 3
"""The application answered ``lifespan.startup.failed``."""

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupError(Exception):
    """The server could not start; ``exit_code`` is what the process should exit with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class BoundListener:
    """A bound, listening socket and the endpoint it was made for.

    Picklable through ``multiprocessing`` (the socket is duplicated into the
    child), which is how the supervisor shares listeners with its workers.
    """

    sock: socket.socket
    endpoint: Endpoint
    owns_path: bool = False
    """True when this process created the UNIX socket file (removed on close)."""

    def describe(self) -> str:
        """``http://127.0.0.1:8000``, ``https://[::1]:443`` or ``unix:/run/bayou.sock``."""
        name = self.sock.getsockname()
        if self.sock.family == socket.AF_UNIX:
            return f"unix:{name if isinstance(name, str) else name.decode()}"
        host, port = name[0], name[1]
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.endpoint.is_ssl else "http"
        return f"{scheme}://{host}:{port}"

    def close(self) -> None:
        self.sock.close()
        if self.owns_path and self.endpoint.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint.path)


def _bind_tcp(endpoint: Endpoint, backlog: int) -> socket.socket:
    infos = socket.getaddrinfo(
        endpoint.host or None,
        endpoint.port,
        type=socket.SOCK_STREAM,
        flags=socket.AI_PASSIVE,
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # "::" means IPv6 only here; bind "0.0.0.0" separately for IPv4.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(endpoint: Endpoint, backlog: int) -> socket.socket:
    path = endpoint.path
    # A socket file left by a crashed server would make bind() fail; any other
    # kind of file is not ours to remove.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _adopt_fd(endpoint: Endpoint, backlog: int) -> socket.socket:
    sock = socket.socket(fileno=endpoint.fileno)
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise OSError(f"fd {endpoint.fileno} is not a stream socket")
    # listen() again is harmless on a listening socket and needed on a merely bound one.
    sock.listen(backlog)
    return sock


def bind_listeners(config: Config) -> list[BoundListener]:
    """Bind every endpoint of ``config``; raise StartupError(exit code 1) on failure
    (after closing whatever was already bound)."""
    bound: list[BoundListener] = []
    for endpoint in config.listen_endpoints():
        try:
            if endpoint.kind == "tcp":
                sock = _bind_tcp(endpoint, config.backlog)
            elif endpoint.kind == "unix":
                sock = _bind_unix(endpoint, config.backlog)
            else:
                sock = _adopt_fd(endpoint, config.backlog)
        except OSError as exc:
            for listener in bound:
                listener.close()
            where = _describe_endpoint(endpoint)
            raise StartupError(f"Cannot listen on {where}: {exc}", EXIT_CANNOT_LISTEN) from exc
        bound.append(BoundListener(sock, endpoint, owns_path=endpoint.kind == "unix"))
    return bound


def _describe_endpoint(endpoint: Endpoint) -> str:
    if endpoint.kind == "unix":
        return f"unix:{endpoint.path}"
    if endpoint.kind == "fd":
        return f"fd:{endpoint.fileno}"
    return f"{endpoint.host}:{endpoint.port}"


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for ``config.loop`` ("auto" = uvloop if installed)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.new_event_loop


class _ConnectionSet(set[Connection]):
    """``state.connections`` that wakes the shutdown waiter when it empties,
    so graceful shutdown does not poll."""

    def __init__(self) -> None:
        super().__init__()
        self.emptied = asyncio.Event()

    def discard(self, item: Connection) -> None:  # type: ignore[override]
        super().discard(item)
        if not self:
            self.emptied.set()

    def remove(self, item: Connection) -> None:
        super().remove(item)
        if not self:
            self.emptied.set()


class Server:
    """One server process. See the module docstring for the lifecycle."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = ServerState(access_log=AccessLog(config.access_log))
        self._connections = _ConnectionSet()
        self.state.connections = self._connections
        self.listeners: list[BoundListener] = []
        self.should_exit = False
        self.force_exit = False
        self.started = False
        self._servers: list[asyncio.AbstractServer] = []
        self._lifespan: Lifespan | None = None
        self._exit_event = asyncio.Event()
        self._force_event = asyncio.Event()
        self._signals_installed: list[int] = []
        self.announce = True
        """Log "Listening on ..." at INFO (workers leave that to the supervisor)."""
        self.on_started: Callable[[], None] | None = None
        """Called once the server accepts connections (the supervisor's readiness hook)."""

    @property
    def bound_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every TCP listener (how callers discover port 0)."""
        found: list[tuple[str, int]] = []
        for listener in self.listeners:
            if listener.sock.family in (socket.AF_INET, socket.AF_INET6):
                name = listener.sock.getsockname()
                found.append((name[0], name[1]))
        return found

    async def startup(self, sockets: Sequence[socket.socket | BoundListener] | None = None) -> None:
        """Bind (or adopt ``sockets``), run lifespan startup, then start accepting.

        Raises StartupError (``exit_code`` 1: cannot listen / load the app or
        TLS files; 3: ``lifespan.startup.failed``); nothing is left listening then.
        """
        loop = asyncio.get_running_loop()
        config = self.config
        _apply_asgi_threads(loop)
        try:
            app = config.load_app()
        except Exception as exc:
            logger.error("Error loading ASGI application %r", config.app, exc_info=exc)
            raise StartupError(f"Cannot load application: {exc}", EXIT_CANNOT_LISTEN) from exc

        # Imported here: the HTTP protocol module is heavier and its import
        # should not be a cost of importing the server API.
        from bayou.server.http import HttpProtocol

        if sockets is None:
            self.listeners = bind_listeners(config)
        else:
            default = config.listen_endpoints()[0]
            self.listeners = [
                s if isinstance(s, BoundListener) else BoundListener(s, default) for s in sockets
            ]
        try:
            contexts = [config.ssl_context(listener.endpoint) for listener in self.listeners]
        except (OSError, ValueError) as exc:
            self._close_listeners()
            raise StartupError(f"Cannot load TLS certificate: {exc}", EXIT_CANNOT_LISTEN) from exc

        # Listening sockets already queue connections (backlog); they are only
        # accepted once the application has finished its startup.
        self._lifespan = Lifespan(
            app,
            config.lifespan,
            self.state.lifespan_state,
            shutdown_timeout=config.lifespan_shutdown_timeout,
        )
        try:
            await self._lifespan.startup()
        except LifespanFailure as exc:
            self._lifespan.cancel()
            self._close_listeners()
            message = f"Application startup failed: {exc or '(no message)'}"
            raise StartupError(message, EXIT_STARTUP_FAILED) from exc
        except BaseException:
            self._lifespan.cancel()
            self._close_listeners()
            raise

        def factory() -> asyncio.Protocol:
            protocol: asyncio.Protocol = HttpProtocol(config, self.state, app)
            return protocol

        try:
            for listener, ctx in zip(self.listeners, contexts, strict=True):
                self._servers.append(
                    await loop.create_server(
                        factory, sock=listener.sock, ssl=ctx, backlog=config.backlog
                    )
                )
        except BaseException:
            for server in self._servers:
                server.close()
            await self._lifespan.shutdown()
            self._close_listeners()
            raise
        for listener in self.listeners:
            logger.log(
                logging.INFO if self.announce else logging.DEBUG,
                "Listening on %s",
                listener.describe(),
            )
        self.started = True
        if self.on_started is not None:
            self.on_started()

    async def shutdown(self) -> None:
        """Stop accepting, close connections gracefully (abort after
        ``graceful_timeout`` or on forced exit), then run lifespan shutdown."""
        loop = asyncio.get_running_loop()
        self.state.shutting_down = True
        for server in self._servers:
            server.close()

        for connection in list(self.state.connections):
            try:
                connection.shutdown()
            except Exception:
                logger.exception("Error while shutting down %r", connection)
        deadline = loop.time() + self.config.graceful_timeout
        await self._wait_for(lambda: not self.state.connections, deadline)
        if self.state.connections:
            logger.warning(
                "Aborting %d connection(s) still open after graceful shutdown",
                len(self.state.connections),
            )
            for connection in list(self.state.connections):
                try:
                    connection.abort()
                except Exception:
                    logger.exception("Error while aborting %r", connection)

        pending = [task for task in self.state.tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=self.config.application_close_timeout)

        if self._lifespan is not None:
            if self.force_exit:
                self._lifespan.cancel()
            else:
                await self._race_force(self._lifespan.shutdown())
        for server in self._servers:
            # Python 3.12+ waits here for connections too; they are gone by now.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=1.0)
        self._servers.clear()
        self._close_listeners()

    async def serve(self, sockets: Sequence[socket.socket | BoundListener] | None = None) -> int:
        """Start, run until a signal or ``handle_exit``, shut down. Returns the exit code."""
        self._install_signal_handlers()
        try:
            try:
                await self._race_exit(self.startup(sockets))
            except StartupError as exc:
                logger.error("%s", exc)
                return exc.exit_code
            if not self.started:  # a signal arrived during startup
                await self.shutdown()
                return EXIT_OK
            await self._exit_event.wait()
            await self.shutdown()
            return EXIT_OK
        finally:
            self._remove_signal_handlers()

    def run(self, sockets: Sequence[socket.socket | BoundListener] | None = None) -> int:
        """Blocking: run ``serve()`` on a new event loop; returns the exit code."""
        with asyncio.Runner(
            loop_factory=loop_factory(self.config.loop), debug=self.config.verbosity >= 3
        ) as runner:
            return runner.run(self.serve(sockets))

    def handle_exit(self, sig: int = signal.SIGTERM, frame: Any = None) -> None:
        """First call: graceful shutdown. Second call: forced (no more waiting)."""
        if self.should_exit:
            logger.warning("Forced shutdown (%s)", _signal_name(sig))
            self.force_exit = True
            self._force_event.set()
        else:
            logger.info("Shutting down (%s)", _signal_name(sig))
            self.should_exit = True
        self._exit_event.set()

    async def _wait_for(self, done: Callable[[], bool], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not done() and not self.force_exit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._connections.emptied.clear()
            if done():
                return
            waiters = [
                loop.create_task(self._connections.emptied.wait()),
                loop.create_task(self._force_event.wait()),
            ]
            # The timeout also covers a Connection that leaves the set by some
            # other path than discard()/remove().
            await asyncio.wait(waiters, timeout=min(remaining, 1.0), return_when="FIRST_COMPLETED")
            for waiter in waiters:
                waiter.cancel()

    async def _race_force(self, coro: Any) -> None:
        await self._race(coro, self._force_event)

    async def _race_exit(self, coro: Any) -> None:
        await self._race(coro, self._exit_event)

    async def _race(self, coro: Any, event: asyncio.Event) -> None:
        """Run ``coro`` unless ``event`` fires first (then cancel it)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro)
        waiter = loop.create_task(event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        task.result()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in a thread: the host application owns signals
        loop = asyncio.get_running_loop()
        for sig in HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig)
            except (NotImplementedError, RuntimeError):
                continue
            self._signals_installed.append(sig)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals_installed:
            loop.remove_signal_handler(sig)
        self._signals_installed.clear()

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _apply_asgi_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Size the loop's default executor from ``ASGI_THREADS`` (as daphne does).

    It runs ``sync_to_async(thread_sensitive=False)`` calls and ``run_in_executor(None, ...)``;
    Django's thread-sensitive calls keep their single thread.
    """
    value = os.environ.get("ASGI_THREADS")
    if not value:
        return
    try:
        workers = int(value)
        if workers < 1:
            raise ValueError(value)
    except ValueError:
        logger.warning("Ignoring ASGI_THREADS=%r: not a positive integer", value)
        return
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asgi")
    )
