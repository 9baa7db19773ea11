"""The in-process server on real sockets: listeners, TLS, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bayou.server.config import Config, Endpoint, parse_endpoint
from bayou.server.server import EXIT_CANNOT_LISTEN, EXIT_OK, Server, StartupError
from tests import apps
from tests.support.servers import fetch, self_signed_cert, serve
from tests.support.timeouts import scaled


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Any]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


class Gate:
    """An app whose HTTP requests block until released; ``arrived`` is set when
    a request reached the app."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await apps.app(scope, receive, send)
            return
        self.arrived.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})


async def test_serve_binds_an_ephemeral_port_and_serves() -> None:
    """serve() listens on 127.0.0.1 with a real port, exposes it, and answers HTTP."""
    async with serve(apps.app) as srv:
        assert srv.host == "127.0.0.1"
        assert srv.port > 0
        assert srv.server.bound_addresses == [("127.0.0.1", srv.port)]
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        assert srv.ws_url == f"ws://127.0.0.1:{srv.port}"
        response = await fetch(srv.url, "/")
        assert (response.status, response.body) == (200, b"hello")


async def test_port_is_closed_after_shutdown() -> None:
    """After the serve() block the port no longer accepts connections."""
    async with serve(apps.app) as srv:
        port = srv.port
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_unix_socket(tmp_path: Path) -> None:
    """uds= listens on a UNIX socket (scope server is the path) and removes the
    socket file at shutdown."""
    path = str(tmp_path / "bayou.sock")
    async with serve(apps.app, uds=path) as srv:
        assert srv.server.bound_addresses == []
        response = await fetch(f"unix:{path}", "/scope")
        assert response.status == 200
        assert json.loads(response.body)["type"] == "http"
        assert (tmp_path / "bayou.sock").is_socket()
    assert not (tmp_path / "bayou.sock").exists()


async def test_stale_unix_socket_file_is_replaced(tmp_path: Path) -> None:
    """A socket file left by a dead server does not prevent binding."""
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    assert (tmp_path / "stale.sock").exists()
    async with serve(apps.app, uds=path):
        assert (await fetch(f"unix:{path}", "/")).body == b"hello"


async def test_inherited_fd() -> None:
    """fd= adopts an already bound socket (the systemd/supervisord pattern)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fd = sock.detach()  # the server owns it now
    async with serve(apps.app, fd=fd) as srv:
        assert srv.port == port
        assert (await fetch(srv.url, "/")).body == b"hello"


async def test_tls(tls: tuple[str, str, Any]) -> None:
    """ssl_certfile/ssl_keyfile serve HTTPS; the scope scheme is https."""
    cert, key, client = tls
    async with serve(apps.app, ssl_certfile=cert, ssl_keyfile=key) as srv:
        assert srv.url.startswith("https://")
        response = await fetch(srv.url, "/scope", ssl_context=client)
        assert response.status == 200
        assert json.loads(response.body)["scheme"] == "https"


async def test_several_endpoints(tmp_path: Path, tls: tuple[str, str, Any]) -> None:
    """endpoints= listens on each: plain TCP, TLS (ssl: string) and a UNIX socket at once."""
    cert, key, client = tls
    path = str(tmp_path / "multi.sock")
    endpoints = [
        "tcp:port=0:interface=127.0.0.1",
        f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        f"unix:{path}",
    ]
    async with serve(apps.app, endpoints=endpoints) as srv:
        (host, plain), (_, secure) = srv.server.bound_addresses
        assert [listener.describe() for listener in srv.server.listeners] == [
            f"http://127.0.0.1:{plain}",
            f"https://127.0.0.1:{secure}",
            f"unix:{path}",
        ]
        assert (await fetch(f"http://{host}:{plain}", "/")).body == b"hello"
        assert (await fetch(f"https://{host}:{secure}", "/", ssl_context=client)).body == b"hello"
        assert (await fetch(f"unix:{path}", "/")).body == b"hello"


async def test_cannot_listen_is_exit_code_1() -> None:
    """Binding a port already in use fails with StartupError(exit_code=1)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(StartupError, match="Cannot listen") as info:
            async with serve(apps.app, port=taken.getsockname()[1]):
                pass  # pragma: no cover
    assert info.value.exit_code == EXIT_CANNOT_LISTEN


async def test_bad_application_path_is_exit_code_1() -> None:
    """An application path that does not import fails startup with exit code 1."""
    with pytest.raises(StartupError, match="Cannot load application") as info:
        async with serve("tests.apps:does_not_exist"):
            pass  # pragma: no cover
    assert info.value.exit_code == EXIT_CANNOT_LISTEN


async def test_root_path_in_scope() -> None:
    """root_path= appears as scope["root_path"] (trailing slash removed by Config)."""
    async with serve(apps.app, root_path="/api/") as srv:
        scope = json.loads((await fetch(srv.url, "/api/scope")).body)
        assert scope["root_path"] == "/api"


async def test_shutdown_lets_in_flight_request_finish() -> None:
    """A request in flight when shutdown starts still gets its complete response."""
    gate = Gate()
    async with serve(gate) as srv:
        request = asyncio.create_task(fetch(srv.url, "/"))
        await asyncio.wait_for(gate.arrived.wait(), scaled(5))
        shutdown = asyncio.create_task(srv.server.shutdown())
        await asyncio.sleep(0)  # shutdown has begun: listeners closed
        assert srv.server.state.shutting_down
        gate.release.set()
        response = await request
        await asyncio.wait_for(shutdown, scaled(10))
    assert (response.status, response.body) == (200, b"finished")
    assert not gate.cancelled


async def test_graceful_timeout_aborts_and_cancels_stuck_requests() -> None:
    """A request still running after graceful_timeout is aborted and its task cancelled."""
    gate = Gate()
    async with serve(gate, graceful_timeout=0.2) as srv:
        request = asyncio.create_task(fetch(srv.url, "/"))
        await asyncio.wait_for(gate.arrived.wait(), scaled(5))
        await asyncio.wait_for(srv.server.shutdown(), scaled(10))
        assert not srv.server.state.connections
        with pytest.raises((ValueError, ConnectionError, asyncio.IncompleteReadError)):
            await request  # connection closed without a response
    assert gate.cancelled


async def test_shutdown_closes_websockets_with_1001() -> None:
    """Open WebSockets receive close code 1001 (going away) on shutdown."""
    async with serve(apps.app) as srv, connect(srv.ws_url + "/echo", proxy=None) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == "ping"
        await asyncio.wait_for(srv.server.shutdown(), scaled(10))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), scaled(5))
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1001


async def test_serve_returns_after_handle_exit_and_second_call_forces() -> None:
    """serve() runs until handle_exit(); a second handle_exit() stops waiting for
    in-flight requests (forced exit) and serve() returns exit code 0."""
    gate = Gate()
    server = Server(Config(app=gate, port=0, graceful_timeout=scaled(60)))
    started = asyncio.Event()
    server.on_started = started.set
    serving = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(started.wait(), scaled(10))
        host, port = server.bound_addresses[0]
        request = asyncio.create_task(fetch(f"http://{host}:{port}", "/"))
        await asyncio.wait_for(gate.arrived.wait(), scaled(5))
        server.handle_exit(signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert not serving.done()  # graceful: waiting for the request
        server.handle_exit(signal.SIGINT)
        assert await asyncio.wait_for(serving, scaled(10)) == EXIT_OK
        assert server.force_exit
        with pytest.raises((ValueError, ConnectionError, asyncio.IncompleteReadError)):
            await request
    finally:
        if not serving.done():
            serving.cancel()


async def test_exit_requested_during_lifespan_startup() -> None:
    """A signal while the application's startup hangs stops serve() (exit 0)
    without ever accepting connections."""
    entered = asyncio.Event()

    async def hanging(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        entered.set()
        await asyncio.Event().wait()  # never completes startup

    server = Server(Config(app=hanging, port=0))
    serving = asyncio.create_task(server.serve())
    await asyncio.wait_for(entered.wait(), scaled(5))
    server.handle_exit(signal.SIGTERM)
    assert await asyncio.wait_for(serving, scaled(10)) == EXIT_OK
    assert not server.started


@pytest.mark.parametrize(
    ("description", "endpoint"),
    [
        ("tcp:8000", Endpoint("tcp", host="0.0.0.0", port=8000)),
        ("tcp6:port=80", Endpoint("tcp", host="::", port=80)),
        ("tcp:port=80:interface=\\:\\:1", Endpoint("tcp", host="::1", port=80)),
        ("tcp:port=80:interface=127.0.0.1:backlog=50", Endpoint("tcp", port=80)),
        ("unix:address=/run/a.sock:mode=660", Endpoint("unix", path="/run/a.sock")),
        ("fd:3", Endpoint("fd", fileno=3)),
        (
            "ssl:port=443:privateKey=both.pem",
            Endpoint("tcp", "0.0.0.0", 443, ssl_certfile="both.pem", ssl_keyfile="both.pem"),
        ),
    ],
)
def test_parse_endpoint(description: str, endpoint: Endpoint) -> None:
    """Twisted endpoint strings parse as in daphne; Twisted-only options are ignored."""
    assert parse_endpoint(description) == endpoint


@pytest.mark.parametrize(
    "description",
    ["tcp:", "tcp:interface=1.2.3.4", "ssl:443", "unix:", "fd:", "udp:53", "tcp:80:bogus=1"],
)
def test_parse_endpoint_rejects(description: str) -> None:
    """Incomplete or unknown endpoint strings raise ValueError (no silent defaults)."""
    with pytest.raises(ValueError):
        parse_endpoint(description)


async def test_asgi_threads_sizes_the_default_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASGI_THREADS=2 (daphne's variable) bounds the loop's default thread pool: ten
    blocking calls through run_in_executor(None, ...) run on at most two threads."""
    import threading
    import time

    monkeypatch.setenv("ASGI_THREADS", "2")
    threads: set[int] = set()

    def blocking() -> None:
        threads.add(threading.get_ident())
        time.sleep(0.02)

    async with serve(apps.app):
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, blocking) for _ in range(10)))
    assert 1 <= len(threads) <= 2
