"""Running bayou for tests: in-process (``serve``) and as a CLI subprocess (``bayou_process``).

In-process, on real sockets (127.0.0.1, port 0)::

    async with serve(app) as srv:         # srv.host, srv.port, srv.url, srv.ws_url, srv.server
        ...

Any ``Config`` field can be overridden: ``serve(app, root_path="/api", limits=Limits(...))``.
Lifespan startup runs before the block (``lifespan="auto"``), graceful shutdown after it.

The CLI, when the command line or process behaviour is the point of the test::

    with bayou_process("tests.apps:echo_http", "--root-path", "/x") as proc:
        proc.url                              # parsed from the "Listening on ..." log line
        proc.wait_for_line(r"Started worker") # regex over the combined stdout/stderr
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayou.server.config import Config
from bayou.server.server import Server
from tests.support.timeouts import scaled

__all__ = [
    "BayouProcess",
    "Response",
    "RunningServer",
    "bayou_process",
    "fetch",
    "fetch_sync",
    "self_signed_cert",
    "serve",
]

ROOT = Path(__file__).resolve().parents[2]
_LISTEN_FLAGS = {"-b", "--bind", "-p", "--port", "-u", "--unix-socket", "--fd", "-e", "--endpoint"}
_LISTENING = re.compile(r"Listening on (\S+)")


@dataclass
class RunningServer:
    """A started in-process server."""

    server: Server
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def serve(app: Any, **config_overrides: Any) -> AsyncIterator[RunningServer]:
    """Run ``app`` on 127.0.0.1 (port 0 unless overridden) for the duration of the block.

    ``graceful_timeout`` defaults to ``scaled(5)`` so a test that leaves a
    connection open does not hang teardown for 30 s.
    """
    config_overrides.setdefault("host", "127.0.0.1")
    config_overrides.setdefault("port", 0)
    config_overrides.setdefault("graceful_timeout", scaled(5))
    config = Config(app=app, **config_overrides)
    server = Server(config)
    await server.startup()
    try:
        addresses = server.bound_addresses
        host, port = addresses[0] if addresses else ("", 0)
        yield RunningServer(server, host, port, "https" if config.is_ssl else "http")
    finally:
        await server.shutdown()


@dataclass
class BayouProcess:
    """A ``python -m bayou.server`` subprocess with its output collected line by line."""

    proc: subprocess.Popen[str]
    urls: list[str] = field(default_factory=list)
    """Every "Listening on X" address, in order (``http://..``, ``https://..``, ``unix:..``)."""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _seen: int = 0

    @property
    def url(self) -> str:
        return next(u for u in self.urls if not u.startswith("unix:"))

    @property
    def host(self) -> str:
        return self.url.rsplit(":", 1)[0].split("://", 1)[1].strip("[]")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    @property
    def output(self) -> str:
        self._drain(0)
        return "\n".join(self.lines)

    def _drain(self, timeout: float) -> bool:
        """Move queued lines into ``lines``; False at end of output."""
        try:
            line = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return True
        while True:
            if line is None:
                self._queue.put(None)  # keep the end marker for later callers
                return False
            self.lines.append(line)
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return True

    def wait_for_line(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """Wait for the next line (after those already matched) matching ``pattern``."""
        deadline = time.monotonic() + (timeout if timeout is not None else scaled(15))
        regex = re.compile(pattern)
        while True:
            while self._seen < len(self.lines):
                match = regex.search(self.lines[self._seen])
                self._seen += 1
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"No line matching {pattern!r}; output:\n{self.output}")
            if not self._drain(min(remaining, 0.5)) and self._seen >= len(self.lines):
                raise EOFError(f"Process ended before {pattern!r}; output:\n{self.output}")

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit; returns its exit code."""
        code = self.proc.wait(timeout if timeout is not None else scaled(30))
        self._drain(0)
        return code


def _reader(stream: Any, sink: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))
    sink.put(None)


@contextlib.contextmanager
def bayou_process(
    app_path: str,
    *cli_args: str,
    listeners: int = 1,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
    wait_ready: bool = True,
) -> Iterator[BayouProcess]:
    """Start ``python -m bayou.server APP ARGS`` and wait for ``listeners``
    "Listening on" lines (``--bind 127.0.0.1 --port 0`` is added when no
    listening option is given). On exit: SIGTERM, then SIGKILL after a grace period.

    ``wait_ready=False`` returns at once (for start-up failure tests).
    """
    args = list(cli_args)
    if not _LISTEN_FLAGS.intersection(args):
        args += ["--bind", "127.0.0.1", "--port", "0"]
    if "--loop" not in args and os.environ.get("BAYOU_TEST_LOOP"):
        # BAYOU_TEST_LOOP=asyncio|uvloop runs the CLI tests on a given loop
        # (default: the command's own default, uvloop when installed).
        args += ["--loop", os.environ["BAYOU_TEST_LOOP"]]
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bayou.server", app_path, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        cwd=str(cwd or ROOT),
        env=child_env,
        pass_fds=pass_fds,
    )
    handle = BayouProcess(proc)
    thread = threading.Thread(target=_reader, args=(proc.stdout, handle._queue), daemon=True)
    thread.start()
    try:
        if wait_ready:
            for _ in range(listeners):
                handle.urls.append(handle.wait_for_line(_LISTENING.pattern).group(1))
        yield handle
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(scaled(20))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        thread.join(scaled(5))
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class Response:
    """A parsed HTTP/1.1 response (header names lower-cased)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def _parse_response(raw: bytes) -> Response:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"Incomplete response: {raw!r}")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    response = Response(int(status_line.split()[1]), headers, body)
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        response.body = _dechunk(body)
    return response


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2 :]


def _request_bytes(
    method: str, path: str, body: bytes, headers: list[tuple[str, str]], host: str
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def fetch(
    url: str,
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    deadline: float | None = None,
) -> Response:
    """One HTTP/1.1 request on a fresh connection (``Connection: close``), read to EOF.

    ``url`` is ``http://HOST:PORT``, ``https://HOST:PORT`` or ``unix:/path``.
    """

    async def run() -> Response:
        if url.startswith("unix:"):
            reader, writer = await asyncio.open_unix_connection(url[5:])
            host = "localhost"
        else:
            scheme, rest = url.split("://", 1)
            host_part, port = rest.rsplit(":", 1)
            host = host_part.strip("[]")
            ctx = ssl_context if scheme == "https" else None
            reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
        try:
            writer.write(_request_bytes(method, path, body, headers or [], host))
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        return _parse_response(raw)

    return await asyncio.wait_for(run(), deadline if deadline is not None else scaled(10))


def fetch_sync(
    url: str,
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float | None = None,
) -> Response:
    """Blocking version of ``fetch`` (for subprocess tests)."""
    deadline = timeout if timeout is not None else scaled(10)
    sock: socket.socket
    if url.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(deadline)
        sock.connect(url[5:])
        host = "localhost"
    else:
        scheme, rest = url.split("://", 1)
        host_part, port = rest.rsplit(":", 1)
        host = host_part.strip("[]")
        sock = socket.create_connection((host, int(port)), timeout=deadline)
        if scheme == "https":
            assert ssl_context is not None, "https needs ssl_context"
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
    with sock:
        sock.sendall(_request_bytes(method, path, body, headers or [], host))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return _parse_response(b"".join(chunks))


def self_signed_cert(directory: Path) -> tuple[str, str, ssl.SSLContext]:
    """Create a certificate for 127.0.0.1 with ``openssl`` (on PATH on the test
    machines); returns ``(certfile, keyfile, client_context trusting it)``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=scaled(30),
    )  # fmt: skip
    client = ssl.create_default_context(cafile=str(cert))
    return str(cert), str(key), client
