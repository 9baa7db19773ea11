"""``--workers N`` and ``--reload``: one supervisor, N server processes.

The supervisor binds every listener once and shares the listening sockets
with its workers (spawned with ``multiprocessing``'s "spawn" method, so each
worker imports the application afresh — which is also what makes ``--reload``
work). The kernel spreads accepted connections over the workers.

* A worker that dies is restarted, with an exponential backoff while workers
  keep dying young.
* A worker that fails *before it is ready* with exit code 1 (cannot load the
  application) or 3 (lifespan startup failed) stops the whole server with the
  same exit code — that failure is deterministic. Under ``--reload`` the
  supervisor instead waits for the next file change.
* SIGTERM/SIGINT: forwarded to the workers as SIGTERM (graceful); a second
  signal is forwarded too, which makes the workers stop at once. Workers run
  in their own process group so a terminal's Ctrl-C reaches them only through
  the supervisor, and they stop by themselves if the supervisor dies.
* SIGHUP: graceful restart of every worker (new code, same sockets).
* ``--reload``: every ``POLL_INTERVAL`` the watched ``.py`` files are
  stat()-ed; on a change all workers are restarted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

from bayou.server.config import Config
from bayou.server.reload import POLL_INTERVAL, FileWatcher
from bayou.server.server import (
    EXIT_CANNOT_LISTEN,
    EXIT_OK,
    EXIT_STARTUP_FAILED,
    BoundListener,
    Server,
    StartupError,
    bind_listeners,
)

__all__ = ["Supervisor"]

logger = logging.getLogger("bayou.server")

_BACKOFF_START = 0.1
_BACKOFF_MAX = 10.0
_YOUNG = 10.0
"""A worker that dies within this many seconds of starting counts toward the backoff."""
_KILL_MARGIN = 5.0
"""Extra seconds beyond graceful_timeout before a stopping worker is SIGKILLed."""


def _worker_main(config: Config, listeners: list[BoundListener], channel: Connection) -> None:
    """Entry point of a worker process."""
    import asyncio

    from bayou.server.logging import configure_logging
    from bayou.server.server import loop_factory

    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    configure_logging(config)
    server = Server(config)
    server.announce = False
    server.on_started = lambda: channel.send("ready")

    async def serve() -> int:
        loop = asyncio.get_running_loop()

        def parent_gone() -> None:
            loop.remove_reader(channel.fileno())
            logger.warning("Supervisor went away; stopping worker %d", os.getpid())
            server.handle_exit(signal.SIGTERM)

        # The supervisor never writes after start-up, so readability means EOF.
        loop.add_reader(channel.fileno(), parent_gone)
        return await server.serve(listeners)

    with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
        code = runner.run(serve())
    raise SystemExit(code)


@dataclass
class _Worker:
    process: Any  # multiprocessing SpawnProcess
    channel: Connection
    started: float
    ready: bool = False
    stopping: bool = False


class Supervisor:
    """Runs ``config.workers`` server processes (restarting them) until stopped."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._mp = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._listeners: list[BoundListener] = []
        self._stop_signals = 0
        self._restart_requested = False
        self._backoff = 0.0
        self._respawn_at: float | None = None
        self._exit_code = EXIT_OK
        self._wake_r, self._wake_w = os.pipe()
        self._watcher: FileWatcher | None = None

    # -- signals ---------------------------------------------------------------------

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGHUP:
            self._restart_requested = True
        else:
            self._stop_signals += 1
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    # -- workers ---------------------------------------------------------------------

    def _spawn(self) -> None:
        parent_end, child_end = self._mp.Pipe(duplex=True)
        # Workers must not remove the UNIX socket file when they stop; the
        # supervisor owns it.
        shared = [dataclasses.replace(listener, owns_path=False) for listener in self._listeners]
        process = self._mp.Process(
            target=_worker_main,
            args=(self.config, shared, child_end),
            name="bayou-worker",
        )
        process.start()
        child_end.close()
        self._workers.append(_Worker(process, parent_end, time.monotonic()))
        logger.info("Started worker process [%d]", process.pid)

    def _stop_worker(self, worker: _Worker, sig: int = signal.SIGTERM) -> None:
        worker.stopping = True
        if worker.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, sig)

    def _reap(self) -> list[_Worker]:
        """Remove and return workers whose process ended."""
        dead = [w for w in self._workers if not w.process.is_alive()]
        for worker in dead:
            worker.process.join()
            worker.channel.close()
            self._workers.remove(worker)
        return dead

    def _read_channels(self, ready: list[Any]) -> None:
        for worker in self._workers:
            if worker.channel in ready:
                try:
                    while worker.channel.poll():
                        if worker.channel.recv() == "ready":
                            worker.ready = True
                            logger.info("Worker process [%d] ready", worker.process.pid)
                except (EOFError, OSError):
                    pass

    def _handle_deaths(self, dead: list[_Worker]) -> None:
        now = time.monotonic()
        for worker in dead:
            code = worker.process.exitcode
            if worker.stopping:
                logger.info("Worker process [%d] stopped", worker.process.pid)
                continue
            logger.warning("Worker process [%d] died (exit code %s)", worker.process.pid, code)
            if not worker.ready and code in (EXIT_CANNOT_LISTEN, EXIT_STARTUP_FAILED):
                if self.config.reload:
                    logger.error("Waiting for a file change before restarting")
                    self._respawn_at = None
                    continue
                logger.error("Worker failed to start; stopping")
                self._exit_code = code
                self._stop_signals = max(self._stop_signals, 1)
                return
            if now - worker.started < _YOUNG:
                self._backoff = min(max(self._backoff * 2, _BACKOFF_START), _BACKOFF_MAX)
            else:
                self._backoff = 0.0
            self._respawn_at = now + self._backoff

    def _fill(self) -> None:
        while len(self._workers) < self.config.workers:
            self._spawn()

    def _restart_all(self, reason: str) -> None:
        logger.info("%s: restarting worker processes", reason)
        for worker in list(self._workers):
            self._stop_worker(worker)
        self._wait_stopped(self.config.graceful_timeout + _KILL_MARGIN)
        self._backoff = 0.0
        self._respawn_at = time.monotonic()

    def _wait_stopped(self, timeout: float) -> None:
        """Wait for stopping workers; SIGKILL them after ``timeout``. A new stop
        signal meanwhile is forwarded (the workers' second signal: forced stop)."""
        deadline = time.monotonic() + timeout
        killed = False
        signals_seen = self._stop_signals
        while self._workers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if killed:
                    logger.error("Worker processes did not die; giving up on them")
                    return
                for worker in self._workers:
                    logger.warning("Killing worker process [%d]", worker.process.pid)
                    self._stop_worker(worker, signal.SIGKILL)
                killed = True
                deadline = time.monotonic() + _KILL_MARGIN
                continue
            wait([w.process.sentinel for w in self._workers] + [self._wake_r], remaining)
            self._drain_wakeups()
            if self._stop_signals > signals_seen:
                signals_seen = self._stop_signals
                for worker in self._workers:
                    self._stop_worker(worker)
            for worker in self._reap():
                logger.info("Worker process [%d] stopped", worker.process.pid)

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 512)

    # -- main loop -------------------------------------------------------------------

    def run(self) -> int:
        """Bind, spawn, supervise until stopped; returns the exit code."""
        try:
            self._listeners = bind_listeners(self.config)
        except StartupError as exc:
            logger.error("%s", exc)
            return exc.exit_code
        os.set_blocking(self._wake_r, False)
        previous = self._install_signals()
        try:
            for listener in self._listeners:
                logger.info("Listening on %s", listener.describe())
            if self.config.reload:
                self._watcher = FileWatcher(self.config.reload_dirs)
                logger.info(
                    "Watching %s for changes", ", ".join(str(d) for d in self._watcher.dirs)
                )
            self._fill()
            self._loop()
            logger.info("Stopping worker processes")
            for worker in self._workers:
                self._stop_worker(worker)
            self._wait_stopped(self.config.graceful_timeout + _KILL_MARGIN)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for listener in self._listeners:
                listener.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self._exit_code

    def _stopping(self) -> bool:
        # A method, not an inline test: the signal handler changes the counter
        # behind the type checker's back.
        return self._stop_signals > 0

    def _loop(self) -> None:
        next_scan = time.monotonic() + POLL_INTERVAL
        while not self._stopping():
            now = time.monotonic()
            deadlines = [next_scan] if self._watcher else []
            if self._respawn_at is not None:
                deadlines.append(self._respawn_at)
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            waitables: list[Any] = [self._wake_r]
            for worker in self._workers:
                waitables += [worker.process.sentinel, worker.channel]
            ready = wait(waitables, timeout)
            self._drain_wakeups()
            self._read_channels(ready)
            self._handle_deaths(self._reap())
            if self._stopping():
                return
            if self._restart_requested:
                self._restart_requested = False
                self._restart_all("SIGHUP")
            now = time.monotonic()
            if self._watcher is not None and now >= next_scan:
                changed = self._watcher.changed()
                next_scan = time.monotonic() + POLL_INTERVAL
                if changed:
                    self._restart_all(f"Reloading ({os.path.relpath(changed[0])} changed)")
            if self._respawn_at is not None and time.monotonic() >= self._respawn_at:
                self._respawn_at = None
                self._fill()
