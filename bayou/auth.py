"""Django authentication for ASGI applications (``channels.auth`` compatible).

``AuthMiddlewareStack(app)`` gives ``app`` ``scope["cookies"]``,
``scope["session"]`` and ``scope["user"]`` (the logged-in user or
``AnonymousUser``). ``login()`` / ``logout()`` change the session of a live
connection; as in Channels they do not save it (``await
scope["session"].asave()`` does).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject, empty

from bayou.db import database_sync_to_async
from bayou.middleware import BaseMiddleware
from bayou.sessions import CookieMiddleware, SessionMiddleware
from bayou.utils import Receive, Scope, Send

__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "get_user",
    "login",
    "logout",
]

_NO_SESSION = "Cannot find session in scope. You should wrap your consumer in SessionMiddleware."


def _get_user_session_key(session: Any) -> Any:
    """The logged-in user's primary key from ``session``, as a Python value.

    Raises ``KeyError`` when nobody is logged in. The session stores it as a
    string; the user model's primary key field converts it back.
    """
    from django.contrib.auth import SESSION_KEY, get_user_model

    return get_user_model()._meta.pk.to_python(session[SESSION_KEY])


def _resolve_user(scope: Scope) -> Any:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, load_backend
    from django.contrib.auth.models import AnonymousUser

    session = scope["session"]
    user = None
    try:
        user_id = _get_user_session_key(session)
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        pass
    else:
        if backend_path in settings.AUTHENTICATION_BACKENDS:
            backend = load_backend(backend_path)
            user = backend.get_user(user_id)
            # A password change invalidates other sessions: the hash stored
            # at login must still match (or match under a fallback secret key,
            # in which case the session is moved to the current key).
            if user is not None and hasattr(user, "get_session_auth_hash"):
                session_hash = session.get(HASH_SESSION_KEY)
                verified = bool(session_hash) and constant_time_compare(
                    session_hash, user.get_session_auth_hash()
                )
                if not verified:
                    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
                    if (
                        session_hash
                        and fallbacks is not None
                        and any(constant_time_compare(session_hash, h) for h in fallbacks())
                    ):
                        session.cycle_key()
                        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
                    else:
                        session.flush()
                        user = None
    return user or AnonymousUser()


async def get_user(scope: Scope) -> Any:
    """The user logged in to ``scope["session"]``, or ``AnonymousUser``.

    Follows Django's rules: the session's backend must still be in
    ``AUTHENTICATION_BACKENDS`` and the session auth hash must verify
    (otherwise the session is flushed). Raises ``ValueError`` when the scope
    has no session. An empty session (no cookie) costs no thread hop.
    """
    if "session" not in scope:
        raise ValueError(_NO_SESSION)
    is_empty = getattr(scope["session"], "is_empty", None)
    if is_empty is not None and is_empty():
        # No session key and no data in memory (no cookie, nothing set):
        # nobody is logged in, and a thread hop to read storage would tell
        # us nothing. is_empty() itself never reads storage.
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return await database_sync_to_async(_resolve_user)(scope)


def _login(scope: Scope, user: Any, backend: Any) -> None:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.signals import user_logged_in

    session = scope["session"]
    session_auth_hash = ""
    if user is None:
        user = scope.get("user", None)
    if user is None:
        raise ValueError("User must be passed as an argument or must be present in the scope.")
    if hasattr(user, "get_session_auth_hash"):
        session_auth_hash = user.get_session_auth_hash()
    if SESSION_KEY in session:
        if _get_user_session_key(session) != user.pk or (
            session_auth_hash
            and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), session_auth_hash)
        ):
            # Never reuse a session that belongs to another user.
            session.flush()
    else:
        # A new login gets a new session key (session fixation).
        session.cycle_key()
    if backend is None:
        backend = getattr(user, "backend", None)
    if backend is None:
        backends = list(settings.AUTHENTICATION_BACKENDS)
        if len(backends) != 1:
            raise ValueError(
                "You have multiple authentication backends configured and therefore must "
                "provide the `backend` argument or set the `backend` attribute on the user."
            )
        backend = backends[0]
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a dotted import path string (got {backend!r}).")
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = backend
    session[HASH_SESSION_KEY] = session_auth_hash
    scope["user"] = user
    user_logged_in.send(sender=user.__class__, request=None, user=user)


async def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` (default: ``scope["user"]``) in to the connection's session.

    Sets ``scope["user"]`` and sends ``user_logged_in`` (with
    ``request=None``). A session belonging to another user is flushed first;
    otherwise the session key is rotated. The backend is ``backend``, else
    ``user.backend`` (set by ``authenticate()``), else the only configured
    backend (``ValueError`` with several). The session is not saved.
    """
    if "session" not in scope:
        raise ValueError(_NO_SESSION)
    await database_sync_to_async(_login)(scope, user, backend)


def _logout(scope: Scope) -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.signals import user_logged_out

    session = scope["session"]
    # Send the signal first, so receivers can still see who logged out.
    user: Any = scope.get("user", None)
    if hasattr(user, "is_authenticated") and not user.is_authenticated:
        user = None
    if user is not None:
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        scope["user"] = AnonymousUser()


async def logout(scope: Scope) -> None:
    """Flush the session; ``scope["user"]`` (if present) becomes ``AnonymousUser``.

    ``user_logged_out`` is sent first, for an authenticated user only.
    """
    if "session" not in scope:
        raise ValueError(
            "Login cannot find session in scope. You should wrap your consumer in "
            "SessionMiddleware."
        )
    await database_sync_to_async(_logout)(scope)


class UserLazyObject(LazyObject):  # type: ignore[type-arg]
    """``scope["user"]`` until :class:`AuthMiddleware` has resolved it.

    Reading it earlier raises ``ValueError("Accessing scope user before it is ready.")``.
    """

    def _setup(self) -> None:
        raise ValueError("Accessing scope user before it is ready.")


class AuthMiddleware(BaseMiddleware):
    """Put the session's user in ``scope["user"]``; needs ``scope["session"]``.

    A ``user`` already in the scope (from an outer middleware or a test) is
    kept as it is.
    """

    def populate_scope(self, scope: Scope) -> None:
        """Check for the session and add an unresolved ``scope["user"]`` if missing."""
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware cannot find session in scope. SessionMiddleware must be above it."
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        """Load the user into the lazy ``scope["user"]`` added by :meth:`populate_scope`."""
        user = scope["user"]
        if isinstance(user, UserLazyObject) and user._wrapped is empty:
            user._wrapped = await get_user(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        return await super().__call__(scope, receive, send)


def AuthMiddlewareStack(inner: Any) -> CookieMiddleware:
    """``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
