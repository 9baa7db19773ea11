"""The ``bayou`` command line: argument mapping (no process) and the real
command as a subprocess (``python -m bayou.server``)."""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bayou.protocol.limits import Limits
from bayou.server.cli import (
    CommandLineInterface,
    build_config,
    build_endpoint_description_strings,
    build_parser,
)
from bayou.server.config import Config, Endpoint
from tests.support.servers import bayou_process, fetch_sync, self_signed_cert
from tests.support.timeouts import scaled


def config_for(*argv: str) -> Config:
    parser = build_parser()
    return build_config(parser.parse_args(["tests.apps:app", *argv]), parser)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Any]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


# --- argument mapping ------------------------------------------------------------


def test_defaults_listen_on_localhost_8000() -> None:
    """Without listening options bayou listens on 127.0.0.1:8000, like daphne."""
    config = config_for()
    assert config.listen_endpoints() == [Endpoint("tcp", host="127.0.0.1", port=8000)]
    assert config.app == "tests.apps:app"


def test_port_alone_and_bind_alone() -> None:
    """-p alone binds 127.0.0.1; -b alone uses port 8000; [v6] brackets are stripped."""
    assert config_for("-p", "9000").listen_endpoints()[0] == Endpoint("tcp", "127.0.0.1", 9000)
    assert config_for("-b", "0.0.0.0").listen_endpoints()[0] == Endpoint("tcp", "0.0.0.0", 8000)
    assert config_for("-b", "[::1]", "-p", "1").listen_endpoints()[0] == Endpoint("tcp", "::1", 1)


def test_unix_socket_and_fd_replace_tcp_unless_tcp_is_asked_for() -> None:
    """-u / --fd / -e alone listen only there; adding -b/-p listens on TCP as well."""
    assert config_for("-u", "/tmp/x.sock").listen_endpoints() == [
        Endpoint("unix", path="/tmp/x.sock")
    ]
    assert config_for("--fd", "7").listen_endpoints() == [Endpoint("fd", fileno=7)]
    both = config_for("-u", "/tmp/x.sock", "-b", "::1", "-p", "81").listen_endpoints()
    assert sorted(e.kind for e in both) == ["tcp", "unix"]
    assert Endpoint("tcp", host="::1", port=81) in both


def test_endpoint_strings() -> None:
    """-e accepts daphne's Twisted endpoint strings, repeatedly."""
    config = config_for(
        "-e",
        "tcp:port=8001:interface=127.0.0.1",
        "-e",
        "ssl:443:privateKey=k.pem:certKey=c.pem",
        "-e",
        "unix:/run/b.sock",
        "-e",
        "fd:fileno=5",
    )
    assert config.listen_endpoints() == [
        Endpoint("tcp", host="127.0.0.1", port=8001),
        Endpoint("tcp", host="0.0.0.0", port=443, ssl_certfile="c.pem", ssl_keyfile="k.pem"),
        Endpoint("unix", path="/run/b.sock"),
        Endpoint("fd", fileno=5),
    ]


def test_daphne_flags_map_onto_config() -> None:
    """daphne's option names (underscore spellings included) set the matching fields."""
    config = config_for(
        "--websocket_timeout",
        "-1",
        "--websocket_connect_timeout",
        "7",
        "-t",
        "60",
        "--ping-interval",
        "0",
        "--ping-timeout",
        "9",
        "--application-close-timeout",
        "3",
        "--root-path",
        "/api/",
        "--proxy-headers",
        "--proxy-headers-host",
        "X-Real-IP",
        "--proxy-headers-port",
        "X-Real-Port",
        "--forwarded-allow-ips",
        "10.0.0.1, 10.0.0.2",
        "-s",
        "edge",
        "-v",
        "2",
        "--log-fmt",
        "%(message)s",
        "--access-log",
        "-",
    )
    assert config.websocket_timeout is None
    assert config.websocket_connect_timeout == 7
    assert config.http_timeout == 60
    assert config.ping_interval is None
    assert config.ping_timeout == 9
    assert config.application_close_timeout == 3
    assert config.root_path == "/api"
    assert config.proxy_headers
    assert (config.proxy_headers_host, config.proxy_headers_port) == ("X-Real-IP", "X-Real-Port")
    assert config.forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]
    assert config.server_name == "edge"
    assert config.verbosity == 2
    assert config.log_fmt == "%(message)s"
    assert config.access_log_path == "-"
    assert config_for("--websocket-timeout", "5").websocket_timeout == 5
    assert config_for("--no-server-name").server_name == ""


def test_limit_flags() -> None:
    """--limit-* flags exist for every numeric Limits field; daphne's WebSocket size
    flags are aliases of ws_max_message_size / ws_max_frame_size."""
    config = config_for(
        "--websocket-max-message-size",
        "100",
        "--websocket-max-frame-size",
        "50",
        "--limit-max-headers",
        "20",
    )
    assert config.limits == Limits(ws_max_message_size=100, ws_max_frame_size=50, max_headers=20)
    assert config_for("--limit-max-message", "7").limits.ws_max_message_size == 7
    assert config_for("--limit-ws-max-frame-size", "8").limits.ws_max_frame_size == 8


def test_other_flags() -> None:
    """--workers, --reload(-dir), --no-ws-deflate, --lifespan, --graceful-timeout and
    --no-access-log set their fields."""
    config = config_for(
        "--workers",
        "3",
        "--reload",
        "--reload-dir",
        "src",
        "--no-ws-deflate",
        "--lifespan",
        "on",
        "--graceful-timeout",
        "4",
        "--no-access-log",
    )
    assert (config.workers, config.reload, config.reload_dirs) == (3, True, ["src"])
    assert not config.websocket_per_message_deflate
    assert config.lifespan == "on"
    assert config.graceful_timeout == 4
    assert not config.access_log


def test_lifespan_shutdown_timeout_flag() -> None:
    """--lifespan-shutdown-timeout sets the limit; 0 means no limit (None)."""
    assert config_for("--lifespan-shutdown-timeout", "2.5").lifespan_shutdown_timeout == 2.5
    assert config_for("--lifespan-shutdown-timeout", "0").lifespan_shutdown_timeout is None
    assert config_for().lifespan_shutdown_timeout == 30.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--proxy-headers-host", "X-IP"], "--proxy-headers has to be passed"),
        (["--ssl-keyfile", "k.pem"], "go together"),
        (["--workers", "0"], "at least 1"),
        (["--limit-max-headers", "-1"], "must not be negative"),
    ],
)
def test_bad_command_lines_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inconsistent options are usage errors (exit code 2) with a clear message."""
    with pytest.raises(SystemExit) as info:
        config_for(*argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_endpoint_string_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unparseable -e string is reported before anything is bound (exit code 2)."""
    assert CommandLineInterface().run(["tests.apps:app", "-e", "carrier:pigeon"]) == 2
    assert "unsupported type 'carrier'" in capsys.readouterr().err


def test_build_endpoint_description_strings() -> None:
    """daphne's helper builds tcp/unix/fd strings; host without port is an error."""
    assert build_endpoint_description_strings("::1", 80, "/s.sock", 3) == [
        "tcp:port=80:interface=\\:\\:1",
        "unix:/s.sock",
        "fd:fileno=3",
    ]
    with pytest.raises(ValueError):
        build_endpoint_description_strings(host="127.0.0.1")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the bayou version and exits 0."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("bayou 0.")


# --- the command as a subprocess -------------------------------------------------------


def test_serves_and_logs_access_in_common_log_format() -> None:
    """The command prints "Listening on URL", serves the app and writes an access
    log line per request in common log format."""
    with bayou_process("tests.apps:app") as proc:
        response = fetch_sync(proc.url, "/hello?x=1")
        assert (response.status, response.body) == (200, b"hello")
        line = proc.wait_for_line(r'"GET /hello\?x=1 HTTP/1.1" 200').string
        assert line.startswith("127.0.0.1:")
        assert " - - [" in line


def test_access_log_to_file(tmp_path: Path) -> None:
    """--access-log PATH appends the access lines to PATH (and not to the log output)."""
    log = tmp_path / "access.log"
    with bayou_process("tests.apps:app", "--access-log", str(log)) as proc:
        fetch_sync(proc.url, "/x")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert '"GET /x HTTP/1.1" 200' in log.read_text()
    assert '"GET /x' not in proc.output


def test_root_path_reaches_the_scope() -> None:
    """--root-path sets scope["root_path"]."""
    with bayou_process("tests.apps:app", "--root-path", "/prefix") as proc:
        scope = json.loads(fetch_sync(proc.url, "/prefix/scope").body)
        assert scope["root_path"] == "/prefix"


def test_lifespan_startup_failure_exits_3() -> None:
    """lifespan.startup.failed: the message is logged and the process exits with 3."""
    with bayou_process("tests.apps:failing_startup_app", wait_ready=False) as proc:
        assert proc.wait() == 3
        assert "database unreachable" in proc.output
        assert "Listening on" not in proc.output


def test_cannot_listen_exits_1() -> None:
    """A port already in use: error logged, exit code 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with bayou_process("tests.apps:app", "-b", "127.0.0.1", "-p", port, wait_ready=False) as p:
            assert p.wait() == 1
            assert "Cannot listen" in p.output


def test_unknown_application_exits_1() -> None:
    """An application path that cannot be imported: exit code 1 with the reason."""
    with bayou_process("tests.apps:missing", wait_ready=False) as proc:
        assert proc.wait() == 1
        assert "missing" in proc.output


def test_unix_socket(tmp_path: Path) -> None:
    """-u PATH serves on a UNIX socket and announces it as unix:PATH."""
    path = str(tmp_path / "cli.sock")
    with bayou_process("tests.apps:app", "-u", path) as proc:
        assert proc.urls == [f"unix:{path}"]
        assert fetch_sync(f"unix:{path}", "/").body == b"hello"


def test_inherited_fd() -> None:
    """--fd N serves on a listening socket inherited from the parent process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    with (
        sock,
        bayou_process(
            "tests.apps:app", "--fd", str(sock.fileno()), pass_fds=(sock.fileno(),)
        ) as proc,
    ):
        assert proc.port == sock.getsockname()[1]
        assert fetch_sync(proc.url, "/").body == b"hello"


def test_tls_and_endpoints(tls: tuple[str, str, Any]) -> None:
    """--ssl-certfile/--ssl-keyfile serve HTTPS; -e adds a plain listener alongside."""
    cert, key, client = tls
    args = ["--ssl-certfile", cert, "--ssl-keyfile", key, "-b", "127.0.0.1", "-p", "0"]
    with bayou_process(
        "tests.apps:app", *args, "-e", "tcp:port=0:interface=127.0.0.1", listeners=2
    ) as proc:
        https = next(u for u in proc.urls if u.startswith("https://"))
        http = next(u for u in proc.urls if u.startswith("http://"))
        scope = json.loads(fetch_sync(https, "/scope", ssl_context=client).body)
        assert scope["scheme"] == "https"
        assert fetch_sync(http, "/").body == b"hello"


def test_sigterm_closes_websockets_1001_and_finishes_requests() -> None:
    """SIGTERM: open WebSockets get close code 1001, an in-flight HTTP request still
    gets its full response, and the process exits 0."""
    with bayou_process("tests.apps:app", "--graceful-timeout", str(scaled(20))) as proc:
        with connect(proc.ws_url + "/echo", proxy=None, open_timeout=scaled(10)) as ws:
            ws.send("hi")
            assert ws.recv(timeout=scaled(5)) == "hi"
            results: list[Any] = []
            slow = threading.Thread(
                target=lambda: results.append(fetch_sync(proc.url, "/slow?1", timeout=scaled(20)))
            )
            slow.start()
            proc.wait_for_line("slow request started")
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=scaled(10))
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1001
            slow.join(scaled(20))
        assert results and (results[0].status, results[0].body) == (200, b"done")
        assert proc.wait() == 0
