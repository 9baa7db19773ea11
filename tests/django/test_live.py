"""bayou.testing.ChannelsLiveServerTestCase: the project on bayou's real server.

The server runs in a spawned process that imports this module as the
project: ``application`` below is its ``ASGI_APPLICATION`` and
``urlpatterns`` its ``ROOT_URLCONF``.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.test.utils import setup_databases, teardown_databases
from django.urls import path
from websockets.sync.client import connect as ws_connect

from bayou import testing
from bayou.auth import AuthMiddlewareStack
from bayou.db import database_sync_to_async
from bayou.generic.websocket import AsyncWebsocketConsumer
from bayou.routing import ProtocolTypeRouter, URLRouter
from bayou.testing.live import (
    LiveServerError,
    _settings_snapshot,
    make_application,
    set_database_connection,
)
from tests.support.timeouts import scaled

# --- the "project" served by the live server ----------------------------------------


def users_view(request: HttpRequest) -> HttpResponse:
    names = User.objects.order_by("username").values_list("username", flat=True)
    return HttpResponse(",".join(names), content_type="text/plain")


urlpatterns = [path("users/", users_view)]


def _count_users() -> int:
    return User.objects.count()


class UsersConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        users = await database_sync_to_async(_count_users)()
        await self.send(json.dumps({"user": str(self.scope["user"]), "users": users}))

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        await self.send(text_data=f"echo:{text_data}")


application = ProtocolTypeRouter(
    {
        "http": ASGIHandler(),
        "websocket": AuthMiddlewareStack(URLRouter([path("ws/users/", UsersConsumer.as_asgi())])),
    }
)

PROJECT = {
    "ASGI_APPLICATION": f"{__name__}.application",
    "ROOT_URLCONF": __name__,
    "STATIC_URL": "/static/",
}
TIMEOUT = scaled(30)

# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def file_test_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A file-based SQLite test database (TEST NAME), so that the server
    process sees what the test process commits."""
    connection = connections["default"]
    # An in-memory SQLite connection left open by earlier test modules ignores
    # close() (closing would destroy its data), so the switch to a file would
    # silently keep using it: close it for real first.
    if connection.connection is not None and connection.is_in_memory_db():
        BaseDatabaseWrapper.close(connection)
    test_settings = connection.settings_dict["TEST"]
    old_name = test_settings.get("NAME")
    test_settings["NAME"] = str(tmp_path_factory.mktemp("live") / "test.sqlite3")
    fast_hashing = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    )
    fast_hashing.enable()
    old_config = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(old_config, verbosity=0)
    fast_hashing.disable()
    test_settings["NAME"] = old_name


# --- tests --------------------------------------------------------------------------


def test_in_memory_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an in-memory SQLite database the class refuses to start, with the
    Channels error message (the server process could not see the data)."""

    class InMemory(testing.ChannelsLiveServerTestCase):
        pass

    # Only the name is read by the check; no connection is opened.
    monkeypatch.setitem(connections["default"].settings_dict, "NAME", ":memory:")
    try:
        with pytest.raises(ImproperlyConfigured) as info:
            InMemory.setUpClass()
    finally:
        InMemory.doClassCleanups()
    assert str(info.value) == "ChannelLiveServerTestCase can not be used with in memory databases"


@pytest.mark.usefixtures("file_test_database")
def test_server_dying_while_starting_is_reported() -> None:
    """A server process that fails to start raises RuntimeError("Server stopped"),
    with the process' traceback as the cause; settings are restored."""

    @override_settings(ASGI_APPLICATION=f"{__name__}.no_such_application")
    class Broken(testing.ChannelsLiveServerTestCase):
        pass

    hosts_before = list(settings.ALLOWED_HOSTS)
    try:
        with pytest.raises(RuntimeError, match=r"^Server stopped$") as info:
            Broken.setUpClass()
    finally:
        Broken.doClassCleanups()
    assert isinstance(info.value.__cause__, LiveServerError)
    assert "no_such_application" in str(info.value.__cause__)
    assert hosts_before == settings.ALLOWED_HOSTS


def test_make_application_and_set_database_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_application loads ASGI_APPLICATION and wraps it for static files
    only when STATIC_URL is set; set_database_connection points NAME at TEST NAME."""
    with override_settings(**PROJECT):
        wrapped = make_application(static_wrapper=testing.live.ASGIStaticFilesHandler)
        assert wrapped.application is application
        assert make_application(static_wrapper=None) is application
    with override_settings(ASGI_APPLICATION=PROJECT["ASGI_APPLICATION"], STATIC_URL=None):
        assert make_application(static_wrapper=testing.live.ASGIStaticFilesHandler) is application
    databases = {"default": {"NAME": "a", "TEST": {"NAME": "b"}}, "other": {"NAME": "c"}}
    # Not override_settings: Django warns about overriding DATABASES.
    monkeypatch.setattr(settings, "DATABASES", databases)
    set_database_connection()
    assert databases["default"]["NAME"] == "b"
    assert databases["other"]["NAME"] == "c"


def test_settings_snapshot_for_the_server_process(caplog: pytest.LogCaptureFixture) -> None:
    """The server process gets the settings that differ from Django's defaults
    (overrides included) and the live connections' DATABASES; unpicklable
    values are left out with a warning."""
    with override_settings(BAYOU_TEST_MARKER="x", BAYOU_TEST_CALLBACK=lambda: None):
        snapshot = _settings_snapshot()
    assert snapshot["BAYOU_TEST_MARKER"] == "x"
    assert snapshot["SECRET_KEY"] == settings.SECRET_KEY
    assert "BAYOU_TEST_CALLBACK" not in snapshot
    assert "BAYOU_TEST_CALLBACK" in caplog.text
    assert "DEFAULT_CHARSET" not in snapshot  # unchanged default
    assert snapshot["DATABASES"]["default"] == connections["default"].settings_dict


@pytest.mark.usefixtures("file_test_database")
@override_settings(**PROJECT)
class LiveServerTests(testing.LiveServerTestCase):
    """The whole stack on a live bayou server: Django views, consumers, auth,
    static files, database rows written by the test."""

    server_kwargs = {"server_name": "bayou-live-test"}
    static_dir: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.static_dir = tempfile.mkdtemp()
        cls.addClassCleanup(_remove_tree, cls.static_dir)
        Path(cls.static_dir, "hello.txt").write_text("static hello")
        static = override_settings(STATICFILES_DIRS=[cls.static_dir])
        static.enable()
        cls.addClassCleanup(static.disable)
        super().setUpClass()

    def get(self, url_path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.live_server_url + url_path, timeout=TIMEOUT) as reply:
            assert reply.headers["Server"] == "bayou-live-test"  # server_kwargs reached Config
            return reply.status, reply.read().decode()

    def test_urls_and_allowed_hosts(self) -> None:
        """live_server_url / live_server_ws_url name 127.0.0.1 and the bound port;
        the host is allowed while the class runs."""
        assert self.live_server_url.startswith("http://127.0.0.1:")
        port = int(self.live_server_url.rsplit(":", 1)[1])
        assert port > 0
        assert self.live_server_ws_url == f"ws://127.0.0.1:{port}"
        assert type(self).live_server_url == self.live_server_url
        assert "127.0.0.1" in settings.ALLOWED_HOSTS

    def test_http_view_sees_rows_written_by_the_test(self) -> None:
        """A Django view in the server process reads the users this test created."""
        User.objects.create_user("carol")
        User.objects.create_user("alice")
        assert self.get("/users/") == (200, "alice,carol")

    def test_rows_from_previous_test_are_gone(self) -> None:
        """Each test starts from an empty database (TransactionTestCase flush)."""
        assert self.get("/users/") == (200, "")

    def test_websocket_with_session_login(self) -> None:
        """A WebSocket consumer behind AuthMiddlewareStack sees the user logged in
        by the test's client (session cookie) and the database rows."""
        user = User.objects.create_user("dora", password="pw")
        self.client.force_login(user)
        name = settings.SESSION_COOKIE_NAME
        cookie = f"{name}={self.client.cookies[name].value}"
        with ws_connect(
            self.live_server_ws_url + "/ws/users/",
            additional_headers={"Cookie": cookie},
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ) as ws:
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {"user": "dora", "users": 1}
            ws.send("ping")
            assert ws.recv(timeout=TIMEOUT) == "echo:ping"

    def test_static_files_are_served(self) -> None:
        """serve_static: files under STATIC_URL come from the static files finders."""
        assert self.get("/static/hello.txt") == (200, "static hello")


def _remove_tree(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
