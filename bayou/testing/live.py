"""A Django test case that serves the project on bayou's real server.

``ChannelsLiveServerTestCase`` (alias ``LiveServerTestCase``) starts the
project's ``ASGI_APPLICATION`` on :class:`bayou.server.server.Server` in a
separate process, once per test class, listening on 127.0.0.1 on a free port.
Browsers (Selenium, Playwright) or plain clients then talk to
``live_server_url`` / ``live_server_ws_url``.

The server process is started with the ``spawn`` method: it does not inherit
the test process' threads, event loop or open database connections. It gets
the test process' *settings* instead (every setting that differs from
Django's defaults, including ``override_settings`` in force when the class is
set up) and connects to the same test databases, so rows a test commits are
visible to the server. That rules out in-memory SQLite, which only exists
inside one process: give SQLite a file via ``DATABASES[...]["TEST"]["NAME"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import queue
import signal
import traceback
from collections.abc import Callable
from functools import partial
from multiprocessing.context import SpawnProcess
from typing import Any, ClassVar

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test.testcases import TransactionTestCase
from django.test.utils import modify_settings
from django.utils.functional import classproperty

__all__ = [
    "ChannelsLiveServerTestCase",
    "LiveServerError",
    "LiveServerProcess",
    "LiveServerTestCase",
    "make_application",
    "set_database_connection",
]

logger = logging.getLogger("bayou.testing")

_spawn = multiprocessing.get_context("spawn")

# Never sent to the server process: they describe the test process itself.
_SKIPPED_SETTINGS = frozenset({"SETTINGS_MODULE"})


class LiveServerError(Exception):
    """The server process failed; ``str()`` is its traceback."""


def make_application(*, static_wrapper: Any = None) -> Any:
    """The project's ``ASGI_APPLICATION``, wrapped in ``static_wrapper`` if given.

    Raises ``ImproperlyConfigured`` like ``bayou.routing.get_default_application``.

    Static files are only wrapped in when ``STATIC_URL`` is set (Django's
    static files handler cannot work without it). A module-level function so
    that a ``functools.partial`` of it can be pickled into the server process.
    """
    from django.conf import settings

    from bayou.routing import get_default_application

    application = get_default_application()
    if static_wrapper is not None and settings.STATIC_URL:
        application = static_wrapper(application)
    return application


def set_database_connection() -> None:
    """Point every database alias that has ``TEST["NAME"]`` at that test database.

    Channels runs this in its server process; bayou's server process already
    receives the test database settings, so this is only kept for custom
    ``setup`` callables that expect it.
    """
    from django.conf import settings

    for database in settings.DATABASES.values():
        test_name = database.get("TEST", {}).get("NAME")
        if test_name:
            database["NAME"] = test_name


def _settings_snapshot() -> dict[str, Any]:
    """The test process' settings that differ from Django's defaults, picklable ones only.

    ``DATABASES`` is taken from the live connections, which after test
    database creation name the test databases.
    """
    from django.conf import global_settings, settings

    snapshot: dict[str, Any] = {}
    for name in dir(settings):
        if not name.isupper() or name in _SKIPPED_SETTINGS:
            continue
        try:
            value = getattr(settings, name)
            if hasattr(global_settings, name) and getattr(global_settings, name) == value:
                continue
            pickle.dumps(value)
        except Exception:
            logger.warning("Setting %s is not passed to the live server process", name)
            continue
        snapshot[name] = value
    snapshot["DATABASES"] = {alias: dict(connections[alias].settings_dict) for alias in connections}
    return snapshot


def _configure_django(snapshot: dict[str, Any] | None) -> None:
    import django
    from django.conf import settings

    if snapshot is not None and not settings.configured:
        settings.configure(**snapshot)
    django.setup()


class LiveServerProcess(SpawnProcess):
    """The server process; shaped like Channels' ``DaphneProcess``.

    ``LiveServerProcess(host, get_application, kwargs=None, setup=None,
    teardown=None, port=None)``: ``get_application()`` builds the ASGI
    application in the child; ``kwargs`` are extra :class:`~bayou.server.config.Config`
    fields; ``setup()`` / ``teardown()`` run in the child around serving. After
    ``start()``, ``ready`` (an Event) is set once the server listens and
    ``port.value`` holds the bound port; a failure is put on ``errors`` as a
    :class:`LiveServerError`. ``terminate()`` (SIGTERM) shuts it down gracefully.
    """

    def __init__(
        self,
        host: str,
        get_application: Callable[[], Any],
        kwargs: dict[str, Any] | None = None,
        setup: Callable[[], Any] | None = None,
        teardown: Callable[[], Any] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.host = host
        self.ready = _spawn.Event()
        self.port = _spawn.Value("i", port or 0)
        self.errors: Any = _spawn.Queue()
        # Pickled now and unpickled in the child only after Django is
        # configured: unpickling may import the project's modules.
        self._payload = pickle.dumps((get_application, kwargs or {}, setup, teardown))
        self._settings = _settings_snapshot()

    def run(self) -> None:
        """Child side: configure Django, build the application, serve until SIGTERM."""
        teardown = None
        try:
            _configure_django(self._settings)
            get_application, kwargs, setup, teardown = pickle.loads(self._payload)
            if setup is not None:
                setup()
            application = get_application()
            from bayou.server.config import Config
            from bayou.server.server import loop_factory

            options: dict[str, Any] = {"access_log": False, "graceful_timeout": 5.0}
            options.update(kwargs)
            config = Config(app=application, host=self.host, port=self.port.value, **options)
            with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
                runner.run(self._serve(config))
        except BaseException:
            self.errors.put(LiveServerError(traceback.format_exc()))
            raise
        finally:
            if teardown is not None:
                teardown()

    async def _serve(self, config: Any) -> None:
        from bayou.server.server import Server

        server = Server(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await server.startup()
        try:
            self.port.value = server.bound_addresses[0][1]
            self.ready.set()
            await stop.wait()
        finally:
            await server.shutdown()


class ChannelsLiveServerTestCase(TransactionTestCase):
    """``TransactionTestCase`` with the project served by bayou in another process.

    One server per test class. Class attributes: ``host`` (default
    ``"127.0.0.1"``; Channels used ``"localhost"``), ``port`` (0 = any free
    port), ``ProtocolServerProcess``, ``static_wrapper``
    (``ASGIStaticFilesHandler``), ``serve_static`` (True), ``server_kwargs``
    (extra server ``Config`` fields) and ``startup_timeout`` (seconds).
    ``host`` is added to ``ALLOWED_HOSTS`` while the class runs.

    Raises ``ImproperlyConfigured`` for in-memory SQLite databases and
    ``RuntimeError("Server stopped")`` when the server process dies while
    starting (its traceback is the exception's ``__cause__``).
    """

    host: ClassVar[str] = "127.0.0.1"
    port: ClassVar[int] = 0
    ProtocolServerProcess: ClassVar[type[LiveServerProcess]] = LiveServerProcess
    static_wrapper: ClassVar[Any] = ASGIStaticFilesHandler
    serve_static: ClassVar[bool] = True
    server_kwargs: ClassVar[dict[str, Any]] = {}
    startup_timeout: ClassVar[float] = 60.0
    shutdown_timeout: ClassVar[float] = 10.0

    _port: ClassVar[int]
    _server_process: ClassVar[LiveServerProcess]
    _live_server_modified_settings: ClassVar[modify_settings]

    # Readable on the class too (as in Django's LiveServerTestCase), so that
    # setUpClass can use them after super().setUpClass().
    @classproperty
    def live_server_url(cls) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{cls.host}:{cls._port}"

    @classproperty
    def live_server_ws_url(cls) -> str:
        """``ws://host:port`` of the running server."""
        return f"ws://{cls.host}:{cls._port}"

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        for connection in connections.all():
            if cls._is_in_memory_db(connection):
                raise ImproperlyConfigured(
                    "ChannelLiveServerTestCase can not be used with in memory databases"
                )
        cls._live_server_modified_settings = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        cls._live_server_modified_settings.enable()
        cls.addClassCleanup(cls._live_server_modified_settings.disable)
        get_application = partial(
            make_application, static_wrapper=cls.static_wrapper if cls.serve_static else None
        )
        process = cls.ProtocolServerProcess(
            cls.host, get_application, kwargs=dict(cls.server_kwargs), port=cls.port
        )
        cls._server_process = process
        process.start()
        cls.addClassCleanup(cls._stop_server_process, process)
        cls._port = cls._wait_until_ready(process)

    @classmethod
    def _wait_until_ready(cls, process: LiveServerProcess) -> int:
        # Bounded: one check per second, up to startup_timeout.
        for _ in range(max(1, int(cls.startup_timeout))):
            if process.ready.wait(timeout=1):
                return int(process.port.value)
            if not process.is_alive():
                raise RuntimeError("Server stopped") from cls._child_error(process)
        raise RuntimeError(
            f"Server did not start within {cls.startup_timeout} seconds"
        ) from cls._child_error(process)

    @staticmethod
    def _child_error(process: LiveServerProcess) -> BaseException | None:
        try:
            error: BaseException = process.errors.get(timeout=1)
        except queue.Empty:
            return None
        return error

    @classmethod
    def _stop_server_process(cls, process: LiveServerProcess) -> None:
        if process.is_alive():
            process.terminate()
            process.join(cls.shutdown_timeout)
        if process.is_alive():  # pragma: no cover - a server that ignores SIGTERM
            process.kill()
            process.join(cls.shutdown_timeout)
        with contextlib.suppress(Exception):
            process.errors.close()
            process.errors.join_thread()
        process.close()

    @classmethod
    def _is_in_memory_db(cls, connection: Any) -> bool:
        """True for an SQLite connection whose database lives only in this process."""
        return connection.vendor == "sqlite" and bool(connection.is_in_memory_db())


LiveServerTestCase = ChannelsLiveServerTestCase
"""bayou's own name for :class:`ChannelsLiveServerTestCase`."""
