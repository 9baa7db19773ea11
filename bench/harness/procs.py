"""Starting one server process per measurement, and reading its CPU time and RSS from /proc.

Each server runs alone in a fresh subprocess pinned to one CPU (the load generator
gets the others), with RLIMIT_NOFILE raised to the hard limit, listening on
127.0.0.1 only. It is stopped (SIGINT, then SIGKILL) after the measurement.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.env import BENCH_DIR

__all__ = [
    "CpuPlan",
    "RunningServer",
    "cpu_seconds",
    "free_port",
    "rss_kib",
    "running_server",
    "stop_process",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the server and the load generators are pinned to."""

    server: frozenset[int]
    clients: frozenset[int]

    @classmethod
    def default(cls) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            # One CPU: pinning cannot separate anything; say so in the report instead.
            return cls(frozenset(cpus), frozenset(cpus))
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:]))

    def client_preexec(self) -> Callable[[], None]:
        cpus = set(self.clients)

        def preexec() -> None:
            os.sched_setaffinity(0, cpus)
            _raise_nofile()
            _die_with_parent()

        return preexec


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If run.py is killed outright, its servers and clients must not live on
    # holding ports and CPU: the kernel sends them SIGKILL when run.py dies.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds, from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def stop_process(proc: subprocess.Popen[Any], sig: int) -> None:
    """Send ``sig`` to ``proc`` if it still runs; kill it if it is not gone 5 s later."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class RunningServer:
    name: str
    pid: int
    port: int
    log: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"


class ServerFailed(RuntimeError):
    pass


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            # The end of the log holds the exception; the head is traceback boilerplate.
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise ServerFailed(f"server exited with {proc.returncode} before listening: {tail}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerFailed(f"server not listening on 127.0.0.1:{port} after {timeout:.0f}s")


@contextlib.contextmanager
def running_server(
    name: str,
    argv_for_port: Callable[[int], Sequence[str]],
    cpus: CpuPlan,
    env: dict[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Start a fresh pinned server, wait until it accepts TCP, yield it, then stop it."""
    port = free_port()
    argv = list(argv_for_port(port))
    server_cpus = set(cpus.server)

    def preexec() -> None:
        os.sched_setaffinity(0, server_cpus)
        _raise_nofile()
        _die_with_parent()
        # Own process group: SIGINT from the terminal reaches run.py, which stops
        # the server itself, instead of every server racing to shut down.
        os.setpgrp()

    fd, log_name = tempfile.mkstemp(prefix=f"bayou-bench-{name}-", suffix=".log")
    log = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            argv,
            cwd=BENCH_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        _wait_listening(proc, port, startup_timeout, log)
        yield RunningServer(name, proc.pid, port, log)
    finally:
        stop_process(proc, signal.SIGINT)
        with contextlib.suppress(OSError):
            log.unlink()
