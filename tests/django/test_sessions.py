"""bayou.sessions: cookies and Django sessions over HTTP and WebSocket."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation
from django.test import override_settings
from django.test.utils import setup_databases, teardown_databases

from bayou.sessions import (
    CookieMiddleware,
    InstanceSessionWrapper,
    SessionMiddleware,
    SessionMiddlewareStack,
)
from bayou.testing import HttpCommunicator, WebsocketCommunicator

ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.signed_cookies",
]


@pytest.fixture(scope="module", autouse=True)
def test_database() -> Iterator[None]:
    """A test database (shared in-memory SQLite) with the sessions table."""
    old_config = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(old_config, verbosity=0)


@pytest.fixture(autouse=True)
def clean_sessions() -> Iterator[None]:
    yield
    Session.objects.all().delete()


def store(key: str | None = None) -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore(key)


async def saved_session(data: dict[str, Any]) -> str:
    """Create and store a session; return its key (the cookie value)."""
    session = store()
    for key, value in data.items():
        await session.aset(key, value)
    await session.asave()
    key: str = session.session_key
    return key


def set_cookies(response: dict[str, Any]) -> list[SimpleCookie]:
    """Parse every Set-Cookie header of a communicator response."""
    found = []
    for name, value in response["headers"]:
        if name.lower() == b"set-cookie":
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(value.decode("latin-1"))
            found.append(cookie)
    return found


def http_app(action: Any = None, status: int = 200) -> Any:
    """A raw ASGI HTTP app that runs ``await action(session)`` then responds."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if action is not None:
            await action(scope["session"])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def request(app: Any, cookie: str | None = None, name: str | None = None) -> dict[str, Any]:
    headers = []
    if cookie is not None:
        headers.append((b"cookie", f"{name or settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = HttpCommunicator(SessionMiddlewareStack(app), "GET", "/", headers=headers)
    return await communicator.get_response(timeout=5)


# --- CookieMiddleware ---------------------------------------------------------------


async def test_cookie_middleware_parses_cookies_into_a_new_scope() -> None:
    """scope["cookies"] is a dict parsed from the Cookie header(s); the
    caller's scope is not modified."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    scope = {"type": "http", "headers": [(b"cookie", b"a=1; b=two"), (b"cookie", b"c=3")]}
    await CookieMiddleware(app)(scope, None, None)  # type: ignore[arg-type]
    assert seen[0]["cookies"] == {"a": "1", "b": "two", "c": "3"}
    assert "cookies" not in scope
    await CookieMiddleware(app)({"type": "websocket", "headers": []}, None, None)  # type: ignore[arg-type]
    assert seen[1]["cookies"] == {}


async def test_cookie_middleware_needs_headers() -> None:
    """A scope without headers (e.g. lifespan) is rejected with ValueError."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="did not have a headers key"):
        await CookieMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]


def test_set_cookie_attributes() -> None:
    """set_cookie appends a Set-Cookie header with every requested attribute."""
    message: dict[str, Any] = {"type": "http.response.start", "status": 200}
    CookieMiddleware.set_cookie(
        message,
        "name",
        "va lue",
        max_age=60,
        path="/p/",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="Strict",
    )
    [(header, value)] = message["headers"]
    assert header == b"Set-Cookie"
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(value.decode())
    morsel = cookie["name"]
    assert morsel.value == "va lue"
    assert morsel["max-age"] == "60"
    assert morsel["expires"]  # max_age also sets expires
    assert morsel["path"] == "/p/"
    assert morsel["domain"] == "example.com"
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"


def test_set_cookie_expires_datetime_becomes_max_age() -> None:
    """A datetime ``expires`` (aware or naive UTC) is turned into max-age."""
    for when in (
        datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(hours=1),
        datetime.datetime.now(tz=datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1),
    ):
        message: dict[str, Any] = {}
        CookieMiddleware.set_cookie(message, "k", "v", expires=when)
        value = message["headers"][0][1].decode()
        max_age = int(re.search(r"Max-Age=(\d+)", value).group(1))  # type: ignore[union-attr]
        assert 3590 <= max_age <= 3601


def test_set_cookie_defaults_and_samesite_check() -> None:
    """Defaults: path "/", SameSite=lax, no Secure/HttpOnly; a bad samesite is refused."""
    message: dict[str, Any] = {}
    CookieMiddleware.set_cookie(message, "k", "v")
    value = message["headers"][0][1].decode()
    assert "Path=/" in value
    assert "SameSite=lax" in value
    assert "Secure" not in value
    assert "HttpOnly" not in value
    with pytest.raises(AssertionError, match="samesite must be either"):
        CookieMiddleware.set_cookie({}, "k", "v", samesite="sometimes")


def test_delete_cookie() -> None:
    """delete_cookie expires the cookie at once (Max-Age=0, a 1970 expiry)."""
    message: dict[str, Any] = {"headers": [(b"x-other", b"1")]}
    CookieMiddleware.delete_cookie(message, "gone", path="/a/", domain="example.com")
    assert message["headers"][0] == (b"x-other", b"1")
    value = message["headers"][1][1].decode()
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(value)
    assert cookie["gone"].value == ""
    assert cookie["gone"]["max-age"] == "0"
    assert "1970" in cookie["gone"]["expires"]
    assert cookie["gone"]["path"] == "/a/"
    assert cookie["gone"]["domain"] == "example.com"


# --- SessionMiddleware --------------------------------------------------------------


async def test_session_middleware_needs_cookies() -> None:
    """Without CookieMiddleware outside it, SessionMiddleware raises the Channels error."""
    app = SessionMiddleware(http_app())
    with pytest.raises(ValueError) as info:
        await app({"type": "http", "headers": []}, None, None)  # type: ignore[arg-type]
    assert str(info.value) == (
        "No cookies in scope - SessionMiddleware needs to run inside of CookieMiddleware."
    )


async def test_existing_session_is_passed_through() -> None:
    """A session already in the scope is left alone (no second session, no cookie)."""
    seen: list[Any] = []
    outer = {"marker": True}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["session"])
        await send({"type": "http.response.start", "status": 200})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [], "cookies": {}, "session": outer}
    await SessionMiddleware(app)(scope, None, send)  # type: ignore[arg-type]
    assert seen == [outer]
    assert sent == [{"type": "http.response.start", "status": 200}]
    wrapper = InstanceSessionWrapper(scope, send)
    assert wrapper.activated is False
    assert wrapper.cookie_response_message_types == ["http.response.start"]


async def test_unmodified_session_sets_no_cookie() -> None:
    """A request that does not change the session gets no Set-Cookie."""

    async def read(session: Any) -> None:
        assert await session.aget("missing") is None

    response = await request(http_app(read))
    assert set_cookies(response) == []
    assert await Session.objects.acount() == 0


@pytest.mark.parametrize("engine", ENGINES)
async def test_modified_session_is_saved_with_cookie(engine: str) -> None:
    """Changing the session saves it and sends its cookie; the next request with
    that cookie sees the data (db, cache and signed-cookie engines)."""

    async def write(session: Any) -> None:
        await session.aset("colour", "blue")

    async def read(session: Any) -> None:
        assert await session.aget("colour") == "blue"
        await session.aset("seen", True)

    with override_settings(SESSION_ENGINE=engine):
        response = await request(http_app(write))
        [cookie] = set_cookies(response)
        key = cookie[settings.SESSION_COOKIE_NAME].value
        assert key
        assert await store(key).aget("colour") == "blue"
        second = await request(http_app(read), cookie=key)
        assert len(set_cookies(second)) == 1


async def test_cookie_honours_session_cookie_settings() -> None:
    """The session cookie uses SESSION_COOKIE_NAME/PATH/DOMAIN/SECURE/HTTPONLY/
    SAMESITE/AGE."""

    async def write(session: Any) -> None:
        await session.aset("x", 1)

    with override_settings(
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_PATH="/app/",
        SESSION_COOKIE_DOMAIN="example.com",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_AGE=1234,
    ):
        response = await request(http_app(write))
    [cookie] = set_cookies(response)
    morsel = cookie["sid"]
    assert morsel["path"] == "/app/"
    assert morsel["domain"] == "example.com"
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["max-age"] == "1234"


async def test_expire_at_browser_close_makes_a_session_cookie() -> None:
    """With SESSION_EXPIRE_AT_BROWSER_CLOSE the cookie has no Max-Age/Expires,
    and without HttpOnly/SameSite settings those attributes are left out."""

    async def write(session: Any) -> None:
        await session.aset("x", 1)

    with override_settings(
        SESSION_EXPIRE_AT_BROWSER_CLOSE=True,
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SAMESITE=None,
    ):
        response = await request(http_app(write))
    value = next(v for n, v in response["headers"] if n == b"Set-Cookie").decode()
    assert "Max-Age" not in value
    assert "expires" not in value.lower()
    assert "HttpOnly" not in value
    assert "SameSite" not in value


async def test_save_every_request() -> None:
    """With SESSION_SAVE_EVERY_REQUEST an unmodified existing session is saved
    and its cookie refreshed."""
    key = await saved_session({"a": 1})

    async def untouched(session: Any) -> None:
        return None

    assert set_cookies(await request(http_app(untouched), cookie=key)) == []
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        response = await request(http_app(untouched), cookie=key)
    [cookie] = set_cookies(response)
    assert cookie[settings.SESSION_COOKIE_NAME].value == key


async def test_application_headers_are_not_modified() -> None:
    """The session cookie is added to a copy: an application that reuses one
    headers object (here a tuple) for every response is not affected."""
    shared_headers = ((b"content-type", b"text/plain"),)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await scope["session"].aset("x", 1)
        await send({"type": "http.response.start", "status": 200, "headers": shared_headers})
        await send({"type": "http.response.body", "body": b""})

    response = await request(app)
    assert response["headers"][0] == (b"content-type", b"text/plain")
    assert len(set_cookies(response)) == 1
    assert shared_headers == ((b"content-type", b"text/plain"),)


async def test_server_error_response_does_not_save() -> None:
    """A 5xx response neither saves the session nor sets its cookie."""

    async def write(session: Any) -> None:
        await session.aset("x", 1)

    response = await request(http_app(write, status=500))
    assert set_cookies(response) == []
    assert await Session.objects.acount() == 0


async def test_emptied_session_deletes_cookie() -> None:
    """Flushing the session (e.g. logout) deletes the cookie and the stored session."""
    key = await saved_session({"a": 1})

    async def flush(session: Any) -> None:
        await session.aflush()

    response = await request(http_app(flush), cookie=key)
    [cookie] = set_cookies(response)
    assert cookie[settings.SESSION_COOKIE_NAME].value == ""
    assert cookie[settings.SESSION_COOKIE_NAME]["max-age"] == "0"
    assert not await Session.objects.filter(session_key=key).aexists()


async def test_concurrently_deleted_session_is_suspicious() -> None:
    """If the stored session disappears while the request runs, saving raises
    SuspiciousOperation (Channels' behaviour)."""
    key = await saved_session({"a": 1})

    async def delete_then_write(session: Any) -> None:
        await session.aget("a")
        await Session.objects.filter(session_key=key).adelete()
        await session.aset("b", 2)

    with pytest.raises(SuspiciousOperation, match="session was deleted"):
        await request(http_app(delete_then_write), cookie=key)


async def test_session_is_lazy() -> None:
    """The session store is attached without reading storage: an unknown cookie
    costs nothing until the application reads the session."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["session"]._wrapped)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body"})

    await request(app, cookie="nosuchsessionkey0000000000000000")
    assert seen[0].accessed is False
    assert not hasattr(seen[0], "_session_cache")


# --- WebSocket ----------------------------------------------------------------------


def ws_app(action: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await action(scope["session"])
        await send({"type": "websocket.send", "text": str(scope["session"].session_key)})
        await send({"type": "websocket.close", "code": 1000})

    return app


async def test_websocket_session_is_not_saved_automatically() -> None:
    """A WebSocket changing its session stores nothing and gets no cookie."""

    async def write(session: Any) -> None:
        await session.aset("x", 1)

    communicator = WebsocketCommunicator(SessionMiddlewareStack(ws_app(write)), "/")
    connected, _ = await communicator.connect()
    assert connected
    assert communicator.response_headers == []
    assert await communicator.receive_from() == "None"
    assert await Session.objects.acount() == 0


@pytest.mark.parametrize("engine", ENGINES[:2])
async def test_websocket_session_saved_on_demand(engine: str) -> None:
    """``await scope["session"].asave()`` in a WebSocket stores the session; it
    can then be read with the key by another connection."""

    async def write_and_save(session: Any) -> None:
        await session.aset("x", 42)
        await session.asave()

    with override_settings(SESSION_ENGINE=engine):
        communicator = WebsocketCommunicator(SessionMiddlewareStack(ws_app(write_and_save)), "/")
        await communicator.connect()
        key = await communicator.receive_from()
        assert isinstance(key, str)
        assert await store(key).aget("x") == 42

        async def read(session: Any) -> None:
            assert await session.aget("x") == 42

        headers = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]
        again = WebsocketCommunicator(SessionMiddlewareStack(ws_app(read)), "/", headers=headers)
        await again.connect()
        assert await again.receive_from() == key
