"""bayou's ``manage.py runserver``: as a subprocess (banner, HTTP, WebSocket, static
files, options, errors) and its request logger in-process.

The subprocess tests write a tiny Django project (settings + a raw ASGI app)
into ``tmp_path``; ``manage_process`` is also used by test_example.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from bayou.management.commands.runserver import RequestLogger
from tests.support.servers import BayouProcess
from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]
BANNER = re.compile(r"Starting ASGI/bayou version \S+ development server at (http://\S+?)/?$")


class ManageProcess(BayouProcess):
    """A ``manage.py``-style subprocess; ``url`` comes from bayou's runserver banner."""


def _reader(stream: Any, sink: Any) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))
    sink.put(None)


@contextlib.contextmanager
def manage_process(
    *args: str,
    env: dict[str, str] | None = None,
    pythonpath: tuple[str, ...] = (),
    manage_py: Path | None = None,
    wait_ready: bool = True,
) -> Iterator[ManageProcess]:
    """Run ``python -m django ARGS`` (or ``python MANAGE_PY ARGS``) in its own
    process group; wait for the runserver banner unless ``wait_ready`` is False.

    On exit the whole group gets SIGTERM (the autoreloader runs a child
    process), then SIGKILL after a grace period.
    """
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (*pythonpath, str(ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.pop("DJANGO_SETTINGS_MODULE", None)
    child_env.update(env or {})
    command = [sys.executable, str(manage_py)] if manage_py else [sys.executable, "-m", "django"]
    proc = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        cwd=str(ROOT),
        env=child_env,
        start_new_session=True,
    )
    handle = ManageProcess(proc)
    thread = threading.Thread(target=_reader, args=(proc.stdout, handle._queue), daemon=True)
    thread.start()
    try:
        if wait_ready:
            handle.urls.append(handle.wait_for_line(BANNER.pattern, timeout=scaled(30)).group(1))
        yield handle
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(scaled(20))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        thread.join(scaled(5))
        if proc.stdout is not None:
            proc.stdout.close()


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``url``; returns (status, body) for any status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


# --- the throwaway project -------------------------------------------------------

_SETTINGS = """
from pathlib import Path
BASE = Path(__file__).resolve().parent
SECRET_KEY = "test"
DEBUG = {debug}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["bayou", "django.contrib.staticfiles"]
DATABASES = {{}}
ROOT_URLCONF = "rs_urls"
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE / "static"]
{extra}
"""

_APP = """
async def application(scope, receive, send):
    if scope["type"] == "http":
        body = b"hello from asgi " + scope["root_path"].encode()
        status = 200 if scope["path"] in ("/", scope["root_path"] + "/") else 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        while True:
            event = await receive()
            if event["type"] == "websocket.connect":
                if scope["path"] == "/deny/":
                    await send({"type": "websocket.close"})
                    return
                await send({"type": "websocket.accept"})
            elif event["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": "echo:" + (event.get("text") or "")})
            else:
                return
    else:
        raise ValueError("no lifespan here")
"""

_URLS = """
from django.http import HttpResponse
from django.urls import path
urlpatterns = [path("", lambda request: HttpResponse(b"hello from wsgi"))]
"""


def make_project(
    directory: Path,
    *,
    debug: bool = True,
    asgi: bool = True,
    extra: str = "",
) -> dict[str, str]:
    """Write settings, an ASGI app, urls and a static file; returns the env to use it."""
    lines = [extra]
    if asgi:
        lines.append('ASGI_APPLICATION = "rs_asgi.application"')
    (directory / "rs_settings.py").write_text(_SETTINGS.format(debug=debug, extra="\n".join(lines)))
    (directory / "rs_asgi.py").write_text(textwrap.dedent(_APP))
    (directory / "rs_urls.py").write_text(_URLS)
    (directory / "static").mkdir(exist_ok=True)
    (directory / "static" / "hello.txt").write_text("static hello")
    return {"DJANGO_SETTINGS_MODULE": "rs_settings"}


@pytest.fixture
def project(tmp_path: Path) -> dict[str, str]:
    return make_project(tmp_path)


def runserver(tmp_path: Path, env: dict[str, str], *args: str, **kwargs: Any) -> Any:
    return manage_process(
        "runserver", "127.0.0.1:0", *args, env=env, pythonpath=(str(tmp_path),), **kwargs
    )


# --- subprocess tests ------------------------------------------------------------


def test_banner_http_and_request_log(tmp_path: Path, project: dict[str, str]) -> None:
    """The banner names bayou and the bound port (port 0 resolved); HTTP requests
    reach ASGI_APPLICATION and are logged on django.channels.server in daphne's format."""
    with runserver(tmp_path, project, "--noreload") as proc:
        assert proc.url.startswith("http://127.0.0.1:")
        assert proc.port != 0
        status, body = http_get(proc.url + "/")
        assert (status, body) == (200, b"hello from asgi ")
        proc.wait_for_line(r"HTTP GET / 200 \[\d+\.\d\d, 127\.0\.0\.1:\d+\]")
        status, _ = http_get(proc.url + "/missing?x=1")
        assert status == 404
        proc.wait_for_line(r"HTTP GET /missing\?x=1 404 \[")


def test_websocket_echo_and_log(tmp_path: Path, project: dict[str, str]) -> None:
    """A WebSocket is served on the same port; the handshake steps are logged."""
    with runserver(tmp_path, project, "--noreload") as proc:
        ws_url = proc.url.replace("http://", "ws://")
        with connect(ws_url + "/ws/", open_timeout=scaled(10)) as ws:
            ws.send("hi")
            assert ws.recv(timeout=scaled(10)) == "echo:hi"
        proc.wait_for_line(r"WebSocket HANDSHAKING /ws/ \[127\.0\.0\.1:\d+\]")
        proc.wait_for_line(r"WebSocket CONNECT /ws/ \[127\.0\.0\.1:\d+\]")
        proc.wait_for_line(r"WebSocket DISCONNECT /ws/ \[127\.0\.0\.1:\d+\]")


def test_websocket_reject_is_403(tmp_path: Path, project: dict[str, str]) -> None:
    """An app closing before accept rejects the handshake with 403, logged as REJECT."""
    from websockets.exceptions import InvalidStatus

    with runserver(tmp_path, project, "--noreload") as proc:
        ws_url = proc.url.replace("http://", "ws://")
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url + "/deny/", open_timeout=scaled(10))
        assert info.value.response.status_code == 403
        proc.wait_for_line(r"WebSocket REJECT /deny/ ")


def test_static_files_served_in_debug(tmp_path: Path, project: dict[str, str]) -> None:
    """With DEBUG and staticfiles installed, STATIC_URL is served from the finders."""
    with runserver(tmp_path, project, "--noreload") as proc:
        assert http_get(proc.url + "/static/hello.txt") == (200, b"static hello")


def test_nostatic_leaves_static_to_the_app(tmp_path: Path, project: dict[str, str]) -> None:
    """--nostatic turns static serving off: the application answers (404 here)."""
    with runserver(tmp_path, project, "--noreload", "--nostatic") as proc:
        status, _ = http_get(proc.url + "/static/hello.txt")
        assert status == 404


def test_no_static_without_debug_unless_insecure(tmp_path: Path) -> None:
    """Without DEBUG, static files are served only with --insecure."""
    env = make_project(tmp_path, debug=False)
    with runserver(tmp_path, env, "--noreload") as proc:
        assert http_get(proc.url + "/static/hello.txt")[0] == 404
    with runserver(tmp_path, env, "--noreload", "--insecure") as proc:
        assert http_get(proc.url + "/static/hello.txt") == (200, b"static hello")


def test_root_path_from_force_script_name(tmp_path: Path) -> None:
    """FORCE_SCRIPT_NAME becomes the ASGI root_path."""
    env = make_project(tmp_path, extra='FORCE_SCRIPT_NAME = "/sub"')
    with runserver(tmp_path, env, "--noreload") as proc:
        assert http_get(proc.url + "/sub/") == (200, b"hello from asgi /sub")


def test_missing_asgi_application_is_a_command_error(tmp_path: Path) -> None:
    """Without ASGI_APPLICATION runserver stops with daphne's CommandError message."""
    env = make_project(tmp_path, asgi=False)
    with runserver(tmp_path, env, "--noreload", wait_ready=False) as proc:
        assert proc.wait() == 1
        assert (
            "You have not set ASGI_APPLICATION, which is needed to run the server." in proc.output
        )


def test_noasgi_runs_django_wsgi_server(tmp_path: Path) -> None:
    """--noasgi starts Django's own WSGI development server (no ASGI_APPLICATION needed)."""
    env = make_project(tmp_path, asgi=False)
    with runserver(tmp_path, env, "--noreload", "--noasgi", wait_ready=False) as proc:
        match = proc.wait_for_line(r"Starting development server at (http://\S+?)/?$")
        assert http_get(match.group(1) + "/") == (200, b"hello from wsgi")


def test_port_in_use(tmp_path: Path, project: dict[str, str]) -> None:
    """A taken port gives Django's message and exit status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with manage_process(
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            env=project,
            pythonpath=(str(tmp_path),),
            wait_ready=False,
        ) as proc:
            assert proc.wait() == 1
            assert "Error: That port is already in use." in proc.output


def test_sigint_shuts_down_cleanly(tmp_path: Path, project: dict[str, str]) -> None:
    """Without the reloader, CONTROL-C (SIGINT) stops the server with exit status 0."""
    with runserver(tmp_path, project, "--noreload") as proc:
        assert http_get(proc.url + "/")[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 0


def test_serves_under_the_autoreloader(tmp_path: Path, project: dict[str, str]) -> None:
    """With the autoreloader (the default) the server runs in the reloader's child,
    in a secondary thread without signal handlers, and still serves."""
    with runserver(tmp_path, project) as proc:
        assert http_get(proc.url + "/") == (200, b"hello from asgi ")
        ws_url = proc.url.replace("http://", "ws://")
        with connect(ws_url + "/ws/", open_timeout=scaled(10)) as ws:
            ws.send("reloaded")
            assert ws.recv(timeout=scaled(10)) == "echo:reloaded"


def test_autoreloader_restarts_on_code_change(tmp_path: Path, project: dict[str, str]) -> None:
    """Editing the application's module restarts the server, which then serves the new code."""
    with runserver(tmp_path, project) as proc:
        assert http_get(proc.url + "/") == (200, b"hello from asgi ")
        app = tmp_path / "rs_asgi.py"
        app.write_text(app.read_text().replace("hello from asgi ", "hello again "))
        # The reloader compares each file's mtime with the one it first recorded; if
        # its first look came after the edit, only a later change is noticed. So the
        # mtime is moved forward again until the restart shows (bounded attempts).
        mtime = app.stat().st_mtime_ns
        for attempt in range(1, 6):
            os.utime(app, ns=(mtime, mtime + attempt * 2_000_000_000))
            try:
                url = proc.wait_for_line(BANNER.pattern, timeout=scaled(6)).group(1)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the server did not restart after the edit")
        assert http_get(url + "/") == (200, b"hello again ")


# --- RequestLogger in-process ----------------------------------------------------


class _Recorder:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = list(events)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return self.events.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def test_request_logger_http_levels(caplog: pytest.LogCaptureFixture) -> None:
    """HTTP lines are INFO below 400, WARNING for 4xx and ERROR for 5xx."""

    def app_with(status: int) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})

        return app

    scope = {"type": "http", "method": "POST", "path": "/p", "query_string": b"", "client": None}
    caplog.set_level(logging.INFO, logger="django.channels.server")
    for status in (200, 404, 503):
        rec = _Recorder([])
        await RequestLogger(app_with(status))(scope, rec.receive, rec.send)
        assert [m["type"] for m in rec.sent] == ["http.response.start", "http.response.body"]
    records = [r for r in caplog.records if r.name == "django.channels.server"]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert re.fullmatch(r"HTTP POST /p 200 \[\d+\.\d\d, -\]", records[0].getMessage())


async def test_request_logger_app_exception_logs_500(caplog: pytest.LogCaptureFixture) -> None:
    """An app failing before its response is logged as a 500 and the error propagates."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    scope = {"type": "http", "method": "GET", "path": "/", "client": ["10.0.0.1", 5]}
    caplog.set_level(logging.INFO, logger="django.channels.server")
    rec = _Recorder([])
    with pytest.raises(RuntimeError):
        await RequestLogger(broken)(scope, rec.receive, rec.send)
    messages = [r.getMessage() for r in caplog.records if r.name == "django.channels.server"]
    assert len(messages) == 1
    assert re.fullmatch(r"HTTP GET / 500 \[\d+\.\d\d, 10\.0\.0\.1:5\]", messages[0])


async def test_request_logger_websocket_steps(caplog: pytest.LogCaptureFixture) -> None:
    """WebSocket lines: HANDSHAKING on connect, CONNECT on accept, DISCONNECT once."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        await send({"type": "websocket.close"})  # after disconnect: not logged twice

    scope = {"type": "websocket", "path": "/ws/", "client": ["127.0.0.1", 9]}
    caplog.set_level(logging.INFO, logger="django.channels.server")
    rec = _Recorder([{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}])
    await RequestLogger(app)(scope, rec.receive, rec.send)
    messages = [r.getMessage() for r in caplog.records if r.name == "django.channels.server"]
    assert messages == [
        "WebSocket HANDSHAKING /ws/ [127.0.0.1:9]",
        "WebSocket CONNECT /ws/ [127.0.0.1:9]",
        "WebSocket DISCONNECT /ws/ [127.0.0.1:9]",
    ]


async def test_request_logger_websocket_reject(caplog: pytest.LogCaptureFixture) -> None:
    """Closing before accept is logged as REJECT."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1000})

    scope = {"type": "websocket", "path": "/ws/", "client": ["127.0.0.1", 9]}
    caplog.set_level(logging.INFO, logger="django.channels.server")
    rec = _Recorder([{"type": "websocket.connect"}])
    await RequestLogger(app)(scope, rec.receive, rec.send)
    messages = [r.getMessage() for r in caplog.records if r.name == "django.channels.server"]
    assert messages == [
        "WebSocket HANDSHAKING /ws/ [127.0.0.1:9]",
        "WebSocket REJECT /ws/ [127.0.0.1:9]",
    ]


async def test_request_logger_passes_other_scopes_through() -> None:
    """Lifespan (and any other type) reaches the app untouched."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    rec = _Recorder([])
    scope = {"type": "lifespan"}
    await RequestLogger(app)(scope, rec.receive, rec.send)
    assert seen == [(scope, rec.receive, rec.send)]


# --- settings and options -> server Config ---------------------------------------


def _config(**options: Any) -> Any:
    from bayou.management.commands.runserver import Command

    command = Command()
    command.addr, command.port = "127.0.0.1", "0"
    defaults = {
        "http_timeout": None,
        "websocket_handshake_timeout": None,
        "websocket_max_message_size": None,
        "websocket_max_frame_size": None,
        "verbosity": 1,
    }
    return command.build_config(RequestLogger(_noop_app), {**defaults, **options})


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def test_config_defaults() -> None:
    """Without settings or flags: 1 MiB WebSocket limits, 5 s handshake, no HTTP timeout,
    root_path "", bayou's own request log instead of the access log."""
    config = _config()
    assert config.limits.ws_max_message_size == 1024 * 1024
    assert config.limits.ws_max_frame_size == 1024 * 1024
    assert config.websocket_connect_timeout == 5
    assert config.http_timeout is None
    assert config.root_path == ""
    assert config.access_log is False
    assert (config.host, config.port) == ("127.0.0.1", 0)


def test_config_from_bayou_settings() -> None:
    """BAYOU_* settings set the defaults (read lazily, so override_settings applies)."""
    from django.test import override_settings

    with override_settings(
        BAYOU_WEBSOCKET_MAX_MESSAGE_SIZE=2000,
        BAYOU_WEBSOCKET_MAX_FRAME_SIZE=1000,
        BAYOU_WEBSOCKET_HANDSHAKE_TIMEOUT=7,
        FORCE_SCRIPT_NAME="/prefix/",
    ):
        config = _config()
    assert config.limits.ws_max_message_size == 2000
    assert config.limits.ws_max_frame_size == 1000
    assert config.websocket_connect_timeout == 7
    assert config.root_path == "/prefix"
    # The cached values were dropped when the override ended.
    assert _config().limits.ws_max_message_size == 1024 * 1024


def test_config_accepts_daphne_setting_names() -> None:
    """DAPHNE_WEBSOCKET_MAX_* work as fallbacks; the BAYOU_ name wins over them."""
    from django.test import override_settings

    with override_settings(
        DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE=300, DAPHNE_WEBSOCKET_MAX_FRAME_SIZE=200
    ):
        config = _config()
        assert config.limits.ws_max_message_size == 300
        assert config.limits.ws_max_frame_size == 200
        with override_settings(BAYOU_WEBSOCKET_MAX_MESSAGE_SIZE=400):
            assert _config().limits.ws_max_message_size == 400


def test_flags_win_over_settings() -> None:
    """Command-line values override settings; 0 (unlimited) is kept as 0."""
    from django.test import override_settings

    with override_settings(BAYOU_WEBSOCKET_MAX_MESSAGE_SIZE=2000):
        config = _config(
            websocket_max_message_size=0,
            websocket_max_frame_size=10,
            websocket_handshake_timeout=2,
            http_timeout=30,
        )
    assert config.limits.ws_max_message_size == 0
    assert config.limits.ws_max_frame_size == 10
    assert config.websocket_connect_timeout == 2
    assert config.http_timeout == 30


def test_unknown_bayou_setting_is_an_attribute_error() -> None:
    """bayou_settings only knows documented names."""
    from bayou.conf import bayou_settings

    with pytest.raises(AttributeError):
        _ = bayou_settings.NO_SUCH_SETTING
