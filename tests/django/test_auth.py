"""bayou.auth: users from Django sessions, login and logout on live connections."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.test.utils import setup_databases, teardown_databases
from django.utils.functional import empty

from bayou.auth import (
    AuthMiddleware,
    AuthMiddlewareStack,
    UserLazyObject,
    _get_user_session_key,
    get_user,
    login,
    logout,
)
from bayou.generic.websocket import AsyncJsonWebsocketConsumer
from bayou.testing import HttpCommunicator, WebsocketCommunicator

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ENGINES = [
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.signed_cookies",
]


@pytest.fixture(scope="module", autouse=True)
def test_database() -> Iterator[None]:
    """A test database (shared in-memory SQLite) with auth and sessions tables,
    and a fast password hasher."""
    fast_hashing = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    )
    fast_hashing.enable()
    old_config = setup_databases(verbosity=0, interactive=False)
    yield
    teardown_databases(old_config, verbosity=0)
    fast_hashing.disable()


@pytest.fixture(autouse=True)
def clean_tables() -> Iterator[None]:
    yield
    Session.objects.all().delete()
    User.objects.all().delete()


@pytest.fixture
async def alice() -> User:
    user: User = await User.objects.acreate_user("alice", password="pw-alice")
    return user


@pytest.fixture
async def bob() -> User:
    user: User = await User.objects.acreate_user("bob", password="pw-bob")
    return user


def new_session(key: str | None = None) -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore(key)


class Recorder:
    """Collects signal sends."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **kwargs})


# --- get_user -----------------------------------------------------------------------


async def test_get_user_needs_a_session() -> None:
    """Without scope["session"] get_user raises the Channels ValueError."""
    with pytest.raises(ValueError) as info:
        await get_user({})
    assert str(info.value) == (
        "Cannot find session in scope. You should wrap your consumer in SessionMiddleware."
    )


async def test_get_user_anonymous_without_login() -> None:
    """A fresh session, or one without a user, gives AnonymousUser."""
    assert isinstance(await get_user({"session": new_session()}), AnonymousUser)
    session = new_session()
    await session.aset("other", 1)
    await session.asave()
    assert isinstance(await get_user({"session": new_session(session.session_key)}), AnonymousUser)


async def test_get_user_after_login_and_save(alice: User) -> None:
    """login + save, then a new session object with the same key resolves the user."""
    scope: dict[str, Any] = {"session": new_session()}
    await login(scope, alice, backend=MODEL_BACKEND)
    await scope["session"].asave()
    user = await get_user({"session": new_session(scope["session"].session_key)})
    assert user.pk == alice.pk
    assert user.is_authenticated


async def test_get_user_from_an_unsaved_session(alice: User) -> None:
    """Auth keys set on a session that was never saved (no key yet) still
    resolve the user, as in Channels."""
    session = new_session()
    await session.aset(SESSION_KEY, str(alice.pk))
    await session.aset(BACKEND_SESSION_KEY, MODEL_BACKEND)
    await session.aset(HASH_SESSION_KEY, alice.get_session_auth_hash())
    assert session.session_key is None
    user = await get_user({"session": session})
    assert user.pk == alice.pk


async def test_get_user_rejects_a_stale_session_hash(alice: User) -> None:
    """After a password change the old session no longer authenticates and is flushed."""
    scope: dict[str, Any] = {"session": new_session()}
    await login(scope, alice, backend=MODEL_BACKEND)
    await scope["session"].asave()
    key = scope["session"].session_key
    alice.set_password("changed")
    await alice.asave()
    session = new_session(key)
    assert isinstance(await get_user({"session": session}), AnonymousUser)
    assert await session.ahas_key(SESSION_KEY) is False


async def test_get_user_accepts_a_fallback_secret(alice: User) -> None:
    """A session hashed with a key now in SECRET_KEY_FALLBACKS still works and
    is re-hashed with the current key."""
    with override_settings(SECRET_KEY="old-secret-key-for-tests"):
        scope: dict[str, Any] = {"session": new_session()}
        await login(scope, alice, backend=MODEL_BACKEND)
        await scope["session"].asave()
        old_hash = scope["session"][HASH_SESSION_KEY]
    with override_settings(SECRET_KEY_FALLBACKS=["old-secret-key-for-tests"]):
        session = new_session(scope["session"].session_key)
        user = await get_user({"session": session})
        assert user.pk == alice.pk
        assert await session.aget(HASH_SESSION_KEY) != old_hash


async def test_get_user_ignores_unconfigured_backend(alice: User) -> None:
    """A session naming a backend that is no longer configured is anonymous."""
    session = new_session()
    await session.aset(SESSION_KEY, str(alice.pk))
    await session.aset(BACKEND_SESSION_KEY, "some.removed.Backend")
    await session.aset(HASH_SESSION_KEY, alice.get_session_auth_hash())
    assert isinstance(await get_user({"session": session}), AnonymousUser)


async def test_get_user_session_key(alice: User) -> None:
    """_get_user_session_key converts the stored string back to the pk type."""
    session = new_session()
    await session.aset(SESSION_KEY, str(alice.pk))
    assert await sync_to_async(_get_user_session_key)(session) == alice.pk


# --- login / logout -----------------------------------------------------------------


async def test_login_sets_session_and_scope_without_saving(alice: User) -> None:
    """login fills the session's auth keys, sets scope["user"], sends
    user_logged_in with request=None, and does not save the session."""
    recorder = Recorder()
    user_logged_in.connect(recorder)
    try:
        scope: dict[str, Any] = {"session": new_session()}
        await login(scope, alice, backend=MODEL_BACKEND)
    finally:
        user_logged_in.disconnect(recorder)
    session = scope["session"]
    assert scope["user"] is alice
    assert session[SESSION_KEY] == str(alice.pk)
    assert session[BACKEND_SESSION_KEY] == MODEL_BACKEND
    assert session[HASH_SESSION_KEY] == alice.get_session_auth_hash()
    assert [(c["sender"], c["request"], c["user"]) for c in recorder.calls] == [(User, None, alice)]
    # cycle_key() may create the new key in storage, but the login itself is unsaved.
    assert await new_session(session.session_key).ahas_key(SESSION_KEY) is False


async def test_login_uses_scope_user_or_complains(alice: User) -> None:
    """user=None falls back to scope["user"]; with neither, ValueError."""
    scope: dict[str, Any] = {"session": new_session(), "user": alice}
    await login(scope, None, backend=MODEL_BACKEND)
    assert scope["session"][SESSION_KEY] == str(alice.pk)
    with pytest.raises(ValueError) as info:
        await login({"session": new_session()}, None)
    assert str(info.value) == (
        "User must be passed as an argument or must be present in the scope."
    )
    with pytest.raises(ValueError, match="Cannot find session in scope"):
        await login({}, alice)


async def test_login_backend_resolution(alice: User) -> None:
    """Backend: argument, else user.backend, else the only configured backend;
    several configured backends and none given is a ValueError."""
    scope: dict[str, Any] = {"session": new_session()}
    await login(scope, alice)
    assert scope["session"][BACKEND_SESSION_KEY] == MODEL_BACKEND
    backends = [MODEL_BACKEND, "django.contrib.auth.backends.AllowAllUsersModelBackend"]
    with override_settings(AUTHENTICATION_BACKENDS=backends):
        with pytest.raises(ValueError, match="multiple authentication backends"):
            await login({"session": new_session()}, alice)
        alice.backend = backends[1]  # type: ignore[attr-defined]
        scope = {"session": new_session()}
        await login(scope, alice)
        assert scope["session"][BACKEND_SESSION_KEY] == backends[1]


async def test_login_rotates_key_and_flushes_other_users_session(alice: User, bob: User) -> None:
    """A first login keeps session data but changes the key; logging in another
    user over an existing login starts from an empty session."""
    session = new_session()
    await session.aset("cart", [1, 2])
    await session.asave()
    first_key = session.session_key
    scope: dict[str, Any] = {"session": session}
    await login(scope, alice, backend=MODEL_BACKEND)
    assert session.session_key != first_key
    assert session["cart"] == [1, 2]
    await login(scope, bob, backend=MODEL_BACKEND)
    assert "cart" not in session
    assert session[SESSION_KEY] == str(bob.pk)


async def test_logout(alice: User) -> None:
    """logout sends user_logged_out for the logged-in user, flushes the session
    and replaces scope["user"] with AnonymousUser."""
    recorder = Recorder()
    user_logged_out.connect(recorder)
    try:
        scope: dict[str, Any] = {"session": new_session()}
        await login(scope, alice, backend=MODEL_BACKEND)
        await scope["session"].asave()
        key = scope["session"].session_key
        await logout(scope)
        await logout({"session": new_session(), "user": AnonymousUser()})
    finally:
        user_logged_out.disconnect(recorder)
    assert [(c["request"], c["user"]) for c in recorder.calls] == [(None, alice)]
    assert isinstance(scope["user"], AnonymousUser)
    assert scope["session"].is_empty()
    assert not await Session.objects.filter(session_key=key).aexists()
    with pytest.raises(ValueError) as info:
        await logout({})
    assert str(info.value) == (
        "Login cannot find session in scope. You should wrap your consumer in SessionMiddleware."
    )


# --- middleware ---------------------------------------------------------------------


def test_user_lazy_object_before_resolution() -> None:
    """Reading an unresolved scope user raises the Channels error."""
    user = UserLazyObject()
    with pytest.raises(ValueError, match=r"^Accessing scope user before it is ready\.$"):
        _ = user.is_authenticated


async def test_auth_middleware_needs_a_session() -> None:
    """AuthMiddleware without a session in the scope raises ValueError."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="SessionMiddleware must be above it"):
        await AuthMiddleware(app)({"type": "http"}, None, None)  # type: ignore[arg-type]


async def test_auth_middleware_keeps_an_existing_user(alice: User) -> None:
    """A user already in the scope is neither replaced nor modified."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"])

    scope = {"type": "http", "session": new_session(), "user": alice}
    await AuthMiddleware(app)(scope, None, None)  # type: ignore[arg-type]
    assert seen == [alice]
    assert "_wrapped" not in vars(alice)


async def test_auth_middleware_stack_over_http(alice: User) -> None:
    """AuthMiddlewareStack resolves scope["user"] from the session cookie;
    without a cookie the user is anonymous."""
    scope: dict[str, Any] = {"session": new_session()}
    await login(scope, alice, backend=MODEL_BACKEND)
    await scope["session"].asave()
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"])
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    cookie = f"{settings.SESSION_COOKIE_NAME}={scope['session'].session_key}".encode()
    await HttpCommunicator(
        AuthMiddlewareStack(app), "GET", "/", headers=[(b"cookie", cookie)]
    ).get_response()
    await HttpCommunicator(AuthMiddlewareStack(app), "GET", "/").get_response()
    assert isinstance(seen[0], UserLazyObject)
    assert seen[0]._wrapped is not empty
    assert seen[0].pk == alice.pk
    assert seen[1].is_anonymous


class LoginConsumer(AsyncJsonWebsocketConsumer):
    """Logs in over the WebSocket, as in the Channels docs."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": str(self.scope["user"])})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content["action"] == "login":
            user = await User.objects.aget(username=content["username"])
            await login(self.scope, user, backend=MODEL_BACKEND)
            await self.scope["session"].asave()
        else:
            await logout(self.scope)
            await self.scope["session"].asave()
        await self.send_json(
            {"user": str(self.scope["user"]), "key": self.scope["session"].session_key}
        )


@pytest.mark.parametrize("engine", ENGINES)
async def test_websocket_login_is_seen_by_the_next_connection(engine: str, alice: User) -> None:
    """Logging in on one WebSocket and saving the session makes the next
    connection with that session cookie authenticated (db, cache and
    signed-cookie engines)."""
    app = AuthMiddlewareStack(LoginConsumer.as_asgi())
    with override_settings(SESSION_ENGINE=engine):
        first = WebsocketCommunicator(app, "/")
        await first.connect()
        assert await first.receive_json_from() == {"user": "AnonymousUser"}
        await first.send_json_to({"action": "login", "username": "alice"})
        reply = await first.receive_json_from(timeout=5)
        assert reply["user"] == "alice"
        await first.disconnect()

        cookie = f"{settings.SESSION_COOKIE_NAME}={reply['key']}".encode()
        second = WebsocketCommunicator(app, "/", headers=[(b"cookie", cookie)])
        await second.connect()
        assert await second.receive_json_from(timeout=5) == {"user": "alice"}
        await second.send_json_to({"action": "logout"})
        assert (await second.receive_json_from(timeout=5))["user"] == "AnonymousUser"
        await second.disconnect()
