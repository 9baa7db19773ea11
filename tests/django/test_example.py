"""The example project (example/) end to end: ``manage.py migrate`` then
``manage.py runserver`` as subprocesses, driven over real HTTP and WebSockets.

This is what ``python3 dev.py demo`` runs from a fresh clone.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.django.test_runserver import ROOT, manage_process
from tests.support.timeouts import scaled

MANAGE = ROOT / "example" / "manage.py"


@dataclass
class Demo:
    url: str
    ws_url: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The example project migrated into a fresh SQLite file and served on a free port."""
    db = tmp_path_factory.mktemp("example") / "db.sqlite3"
    env = {"BAYOU_EXAMPLE_DB": str(db), "BAYOU_EXAMPLE_TICKER_INTERVAL": "0.2"}
    _migrate(env)
    with manage_process(
        "runserver", "127.0.0.1:0", "--noreload", manage_py=MANAGE, env=env
    ) as proc:
        yield Demo(proc.url, proc.ws_url)


def _migrate(env: dict[str, str]) -> None:
    """``manage.py migrate`` for the example project, with ``env`` on top of ours."""
    migrate = subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--noinput"],
        env={**_child_env(), **env},
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the example's manage.py sets its own
    env["PYTHONPATH"] = str(ROOT)
    return env


class Browser:
    """urllib with a cookie jar: enough to log in through Django's login form."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, final URL after redirects, body text)."""
        try:
            with self.opener.open(self.base + path, timeout=scaled(10)) as response:
                return response.status, response.geturl(), response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.geturl(), exc.read().decode()

    def login(self, username: str, password: str = "demo") -> str:
        """Log in with the form; returns the page shown afterwards."""
        _, _, page = self.get("/accounts/login/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert match, page
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1)}
        ).encode()
        request = urllib.request.Request(self.base + "/accounts/login/", data=data)
        with self.opener.open(request, timeout=scaled(10)) as response:
            return str(response.read().decode())

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)

    def websocket(self, demo: Demo, path: str, origin: str | None = None) -> ClientConnection:
        headers = {"Cookie": self.cookie_header} if len(self.jar) else {}
        return connect(
            demo.ws_url + path,
            origin=origin or demo.url,  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=scaled(10),
        )


def recv_json(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=scaled(10)))


# --- pages ---------------------------------------------------------------------------


def test_index_page(demo: Demo) -> None:
    """The index page is served (200) and links the chat, the ticker and the echo."""
    status, _, page = Browser(demo.url).get("/")
    assert status == 200
    assert "Which room would you like to enter?" in page
    assert 'href="/ticker/"' in page
    assert 'href="/echo/"' in page


def test_index_form_goes_to_the_room(demo: Demo) -> None:
    """?room=<name> redirects to /chat/<name>/ (then to the login page when anonymous)."""
    status, url, _ = Browser(demo.url).get("/?room=lobby")
    assert status == 200
    assert url.endswith("/accounts/login/?next=/chat/lobby/")


def test_static_files_served(demo: Demo) -> None:
    """runserver serves the app's static JavaScript (DEBUG)."""
    status, _, body = Browser(demo.url).get("/static/chat/room.js")
    assert status == 200
    assert "/ws/chat/" in body


def test_login_shows_username(demo: Demo) -> None:
    """The demo user created by the data migration can log in; pages show the name."""
    browser = Browser(demo.url)
    page = browser.login("demo")
    assert "Log out" in page
    status, _, room = browser.get("/chat/lobby/")
    assert status == 200
    assert 'id="room-name"' in room


# --- WebSockets ------------------------------------------------------------------------


def test_echo(demo: Demo) -> None:
    """/ws/echo/ (a bare ASGI app) sends text and bytes back unchanged."""
    with Browser(demo.url).websocket(demo, "/ws/echo/") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=scaled(10)) == "héllo"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=scaled(10)) == b"\x00\x01"


def test_chat_rejects_anonymous(demo: Demo) -> None:
    """An anonymous WebSocket to a room is refused with 403."""
    with pytest.raises(InvalidStatus) as info:
        Browser(demo.url).websocket(demo, "/ws/chat/lobby/")
    assert info.value.response.status_code == 403


def test_chat_rejects_foreign_origin(demo: Demo) -> None:
    """A logged-in user's WebSocket from another site's page is refused (Origin check)."""
    browser = Browser(demo.url)
    browser.login("demo")
    with pytest.raises(InvalidStatus) as info:
        browser.websocket(demo, "/ws/chat/lobby/", origin="http://evil.example")
    assert info.value.response.status_code == 403


def test_chat_between_two_users(demo: Demo) -> None:
    """A message reaches everyone in the same room, with the sender's username,
    and nobody in another room."""
    alice, bob = Browser(demo.url), Browser(demo.url)
    alice.login("demo")
    bob.login("demo2")
    with (
        alice.websocket(demo, "/ws/chat/lobby/") as a,
        bob.websocket(demo, "/ws/chat/lobby/") as b,
        bob.websocket(demo, "/ws/chat/elsewhere/") as other,
    ):
        a.send(json.dumps({"message": "hello lobby"}))
        expected = {"message": "hello lobby", "username": "demo"}
        assert recv_json(a) == expected
        assert recv_json(b) == expected

        b.send(json.dumps({"message": "hi demo"}))
        assert recv_json(a) == {"message": "hi demo", "username": "demo2"}
        assert recv_json(b) == {"message": "hi demo", "username": "demo2"}

        # Both lobby messages were delivered before this one was sent; had "elsewhere"
        # received them, they would arrive first.
        other.send(json.dumps({"message": "anyone?"}))
        assert recv_json(other) == {"message": "anyone?", "username": "demo2"}


def test_chat_rejects_bad_messages(demo: Demo) -> None:
    """A message without text gets an error reply, not a broadcast."""
    browser = Browser(demo.url)
    browser.login("demo")
    with browser.websocket(demo, "/ws/chat/lobby2/") as ws:
        ws.send(json.dumps({"nope": 1}))
        assert "error" in recv_json(ws)


def test_ticker_delivers_and_switches(demo: Demo) -> None:
    """The ticker sends the current price on connect, then the feed's updates; after
    {"coin": "ltc"} only Litecoin prices arrive."""
    browser = Browser(demo.url)
    status, _, _ = browser.get("/ticker/")  # starts the session that remembers the coin
    assert status == 200
    with browser.websocket(demo, "/ws/ticker/") as ws:
        first = recv_json(ws)
        assert first["coin"] == "btc"
        assert first["name"] == "Bitcoin"
        assert isinstance(first["price"], float)
        update = recv_json(ws)  # published by the background feed task
        assert update["coin"] == "btc"
        assert update["at"] >= first["at"]

        ws.send(json.dumps({"coin": "ltc"}))
        for _ in range(10):  # btc updates already in flight may come first
            message = recv_json(ws)
            if message["coin"] == "ltc":
                break
        else:
            pytest.fail("no Litecoin price after switching")
        assert message["name"] == "Litecoin"
        for _ in range(2):
            assert recv_json(ws)["coin"] == "ltc"

    # The choice was stored in the session: a new connection starts on Litecoin.
    with browser.websocket(demo, "/ws/ticker/") as ws:
        assert recv_json(ws)["coin"] == "ltc"


def test_ticker_rejects_unknown_coin(demo: Demo) -> None:
    """An unknown coin gets an error message and the connection stays usable."""
    with Browser(demo.url).websocket(demo, "/ws/ticker/") as ws:
        assert recv_json(ws)["coin"] == "btc"
        ws.send(json.dumps({"coin": "doge"}))
        for _ in range(10):
            message = recv_json(ws)
            if "error" in message:
                break
        else:
            pytest.fail("no error for an unknown coin")
        assert "doge" in message["error"]


# --- two servers sharing rooms through Redis --------------------------------------------


def test_two_servers_share_rooms_through_redis(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    """With BAYOU_REDIS_URL set, the demo uses the Redis layer: a chat message sent to
    one server process reaches a user connected to another, in the same room only."""
    import uuid

    db = tmp_path_factory.mktemp("example-redis") / "db.sqlite3"
    env = {
        "BAYOU_EXAMPLE_DB": str(db),
        "BAYOU_REDIS_URL": redis_url,
        "BAYOU_REDIS_PREFIX": f"example-{uuid.uuid4().hex[:8]}",
    }
    _migrate(env)
    serve = ("runserver", "127.0.0.1:0", "--noreload")
    with (
        manage_process(*serve, manage_py=MANAGE, env=env) as one,
        manage_process(*serve, manage_py=MANAGE, env=env) as two,
    ):
        first, second = Demo(one.url, one.ws_url), Demo(two.url, two.ws_url)
        alice, bob = Browser(first.url), Browser(second.url)
        alice.login("demo")
        bob.login("demo2")
        with (
            alice.websocket(first, "/ws/chat/shared/") as a,
            bob.websocket(second, "/ws/chat/shared/") as b,
            bob.websocket(second, "/ws/chat/other/") as other,
        ):
            a.send(json.dumps({"message": "across processes"}))
            expected = {"message": "across processes", "username": "demo"}
            assert recv_json(b) == expected
            assert recv_json(a) == expected
            b.send(json.dumps({"message": "and back"}))
            assert recv_json(a) == {"message": "and back", "username": "demo2"}
            other.send(json.dumps({"message": "only here"}))
            assert recv_json(other) == {"message": "only here", "username": "demo2"}
