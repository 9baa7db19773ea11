"""A private redis-server per measurement, and a tiny RESP client to read its statistics.

The Redis suites never touch a system Redis (6379): every measurement starts
``redis-server --port P --save '' --appendonly no`` on a free port, bound to
127.0.0.1, pinned to the load-generator CPU(s), and stops it afterwards. run.py is
stdlib-only, so the few commands it sends itself (PING, INFO, CONFIG RESETSTAT) go
through the minimal RESP client below.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.procs import CpuPlan, cpu_seconds, free_port, stop_process

__all__ = [
    "RedisFailed",
    "RespClient",
    "RunningRedis",
    "parse_commandstats",
    "redis_unavailable",
    "running_redis",
]

# run.py's own commands: left out of the per-call counts.
_OWN_COMMANDS = frozenset({"info", "config|resetstat", "config", "ping", "command|docs"})


class RedisFailed(RuntimeError):
    pass


def redis_unavailable() -> str | None:
    """Why the Redis suites can't run (no redis-server binary), or None."""
    if shutil.which("redis-server") is None:
        return "redis-server not found (Debian/Ubuntu: sudo apt-get install -y redis-server)"
    return None


class RespClient:
    """Blocking RESP2 client for a handful of administrative commands (5 s timeouts)."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def call(self, *args: str) -> Any:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            data = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisFailed(f"connection closed mid-reply: {line!r}")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisFailed(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._file.read(n + 2)
            return data[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisFailed(f"unexpected reply {line!r}")

    def command_calls(self) -> dict[str, int]:
        """Calls per command since the last CONFIG RESETSTAT (run.py's own left out)."""
        stats = parse_commandstats(self.call("INFO", "commandstats"))
        return {k: v for k, v in stats.items() if k not in _OWN_COMMANDS}


def parse_commandstats(info: str) -> dict[str, int]:
    """``{command: calls}`` from the text of ``INFO commandstats``.

    Redis counts commands run inside Lua scripts here too, so a script's inner
    commands show up next to the EVALSHA that ran them.
    """
    out: dict[str, int] = {}
    for line in info.splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, _, fields = line[len("cmdstat_") :].partition(":")
        for field in fields.split(","):
            key, _, value = field.partition("=")
            if key == "calls":
                out[name] = int(value)
    return out


@dataclass
class RunningRedis:
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu_seconds(self) -> float:
        """CPU time of every redis-server thread, in ns resolution (schedstat), as seconds.

        utime/stime tick at 10 ms, too coarse for a few hundred cheap commands.
        """
        total = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            return cpu_seconds(self.pid)
        return total / 1e9


@contextlib.contextmanager
def running_redis(cpus: CpuPlan, startup_timeout: float = 10.0) -> Iterator[RunningRedis]:
    """Start a private, non-persistent redis-server on a free port; stop it afterwards."""
    port = free_port()
    argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--protected-mode", "yes",
        "--loglevel", "warning", "--daemonize", "no",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=cpus.client_preexec(),
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RedisFailed(f"redis-server exited with {proc.returncode}: {err[-300:]}")
            try:
                client = RespClient(port)
                try:
                    if client.call("PING") == "PONG":
                        break
                finally:
                    client.close()
            except (OSError, RedisFailed):
                pass
            if time.monotonic() > deadline:
                raise RedisFailed(f"redis-server not answering on port {port}")
            time.sleep(0.05)
        yield RunningRedis(proc.pid, port)
    finally:
        stop_process(proc, signal.SIGTERM)
        if proc.stderr is not None:
            proc.stderr.close()
