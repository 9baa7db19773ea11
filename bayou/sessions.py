"""Cookies and Django sessions for ASGI applications (``channels.sessions`` compatible).

``SessionMiddlewareStack(app)`` gives ``app`` a ``scope["cookies"]`` dict and a
lazily loaded ``scope["session"]`` backed by Django's ``SESSION_ENGINE``.

HTTP sessions are saved like Django's own middleware does, when the response
starts. WebSocket sessions are never saved automatically (there is no response
to carry a cookie); save them yourself with ``await scope["session"].asave()``.
"""

from __future__ import annotations

import datetime
import time
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http.cookie import parse_cookie
from django.utils.encoding import force_str
from django.utils.functional import LazyObject
from django.utils.http import http_date

from bayou.utils import Message, Receive, Scope, Send

__all__ = [
    "CookieMiddleware",
    "InstanceSessionWrapper",
    "SessionMiddleware",
    "SessionMiddlewareStack",
]


class CookieMiddleware:
    """Parse the request's ``Cookie`` header into ``scope["cookies"]`` (a ``dict``).

    Raises ``ValueError`` for a scope without ``headers`` (only HTTP and
    WebSocket connections have cookies). The inner application gets a copy of
    the scope; the caller's scope is not modified.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "headers" not in scope:
            raise ValueError(
                "CookieMiddleware was passed a scope that did not have a headers key "
                "(make sure it is only passed HTTP or WebSocket connections)"
            )
        # Usually one Cookie header; HTTP/2 clients may split it, so join them
        # the way RFC 9113 section 8.2.3 says to.
        values = [
            value.decode("latin-1") for name, value in scope["headers"] if name.lower() == b"cookie"
        ]
        cookies = parse_cookie("; ".join(values)) if values else {}
        return await self.inner(dict(scope, cookies=cookies), receive, send)

    @classmethod
    def set_cookie(
        cls,
        message: Message,
        key: str,
        value: Any = "",
        max_age: int | float | datetime.timedelta | None = None,
        expires: str | datetime.datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = False,
        httponly: bool | None = False,
        samesite: str | None = "lax",
    ) -> None:
        """Append a ``Set-Cookie`` header to ``message["headers"]`` (created if missing).

        ``expires`` is an HTTP date string or a ``datetime`` (naive means UTC;
        it is then turned into ``max_age``). ``max_age`` also sets a matching
        ``expires`` for old clients. ``samesite`` must be ``strict``, ``lax``
        or ``none`` (any case) or ``None`` to omit the attribute.
        """
        cookies: SimpleCookie = SimpleCookie()
        cookies[key] = force_str(value)
        morsel = cookies[key]
        if isinstance(max_age, datetime.timedelta):
            max_age = max_age.total_seconds()
        if expires is not None:
            if isinstance(expires, datetime.datetime):
                if expires.tzinfo is None:
                    expires = expires.replace(tzinfo=datetime.UTC)
                delta = expires - datetime.datetime.now(tz=datetime.UTC)
                # One more second: the sub-second part is lost when rounding
                # down, and the cookie should not expire before the given time.
                delta += datetime.timedelta(seconds=1)
                expires = None
                if max_age is None:
                    max_age = max(0, delta.days * 86400 + delta.seconds)
            else:
                morsel["expires"] = expires
        if max_age is not None:
            max_age = int(max_age)
            morsel["max-age"] = max_age
            if not expires:
                morsel["expires"] = http_date(time.time() + max_age)
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite:
            assert samesite.lower() in ("strict", "lax", "none"), (
                "samesite must be either 'strict', 'lax' or 'none'"
            )
            morsel["samesite"] = samesite
        # b"Set-Cookie" as Channels and Django's ASGIHandler send it; servers
        # treat response header names case-insensitively.
        header = morsel.output(header="").strip().encode("utf-8")
        message.setdefault("headers", []).append((b"Set-Cookie", header))

    @classmethod
    def delete_cookie(
        cls, message: Message, key: str, path: str | None = "/", domain: str | None = None
    ) -> None:
        """Append a ``Set-Cookie`` header that makes the client drop cookie ``key``."""
        cls.set_cookie(
            message,
            key,
            max_age=0,
            path=path,
            domain=domain,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            # Browsers ignore a __Secure-/__Host- cookie sent without Secure.
            secure=key.startswith(("__Secure-", "__Host-")),
        )


def _has_own(session: Any, name: str) -> bool:
    """True if the session class overrides SessionBase's default ``name``."""
    return getattr(type(session), name, None) is not getattr(SessionBase, name, None)


class InstanceSessionWrapper:
    """Per-connection session state used by :class:`SessionMiddleware`.

    An implementation detail kept public for Channels compatibility:
    ``activated`` is False when an outer middleware already put a session in
    the scope (this wrapper then passes everything through);
    ``save_message_types`` are the messages on which a modified session is
    saved and ``cookie_response_message_types`` those that carry its cookie.
    """

    save_message_types = ["http.response.start"]
    cookie_response_message_types = ["http.response.start"]

    def __init__(self, scope: Scope, send: Send) -> None:
        self.cookie_name: str = settings.SESSION_COOKIE_NAME
        self.session_store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
        self.scope = dict(scope)
        if "session" in self.scope:
            self.activated = False
        else:
            if "cookies" not in self.scope:
                raise ValueError(
                    "No cookies in scope - SessionMiddleware needs to run inside of "
                    "CookieMiddleware."
                )
            self.scope["session"] = LazyObject()
            self.activated = True
        self.real_send = send

    async def resolve_session(self) -> None:
        """Attach the session store for the request's session cookie.

        Nothing is read from storage yet: the data loads on first access
        (``await session.aget(...)`` in async code).
        """
        if not self.activated:
            return
        session_key = self.scope["cookies"].get(self.cookie_name)
        # SessionStore(key) does no I/O for Django's engines, so no thread hop.
        self.scope["session"]._wrapped = self.session_store(session_key)

    async def send(self, message: Message) -> None:
        """Pass ``message`` on, saving the session and setting its cookie first when due."""
        if self.activated and message["type"] in self.save_message_types:
            # Copy before adding a cookie: the application may reuse its
            # message or headers list (or pass a tuple).
            message = dict(message)
            message["headers"] = list(message.get("headers", ()))
            await self._on_response(message)
        await self.real_send(message)

    async def _on_response(self, message: Message) -> None:
        session: Any = self.scope["session"]
        carries_cookie = message["type"] in self.cookie_response_message_types
        if session.is_empty():
            # Same rule as Django: an emptied session (e.g. after logout)
            # takes its cookie with it; an empty session is never stored.
            if carries_cookie and self.cookie_name in self.scope["cookies"]:
                CookieMiddleware.delete_cookie(
                    message,
                    self.cookie_name,
                    path=settings.SESSION_COOKIE_PATH,
                    domain=settings.SESSION_COOKIE_DOMAIN,
                )
            return
        if not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return
        if message.get("status", 200) >= 500:
            return
        await self.save_session()
        if not carries_cookie:
            return
        if await self._expire_at_browser_close(session):
            max_age: int | None = None
            expires: str | None = None
        else:
            max_age = await self._expiry_age(session)
            expires = http_date(time.time() + max_age)
        CookieMiddleware.set_cookie(
            message,
            self.cookie_name,
            session.session_key,
            max_age=max_age,
            expires=expires,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE or None,
            httponly=settings.SESSION_COOKIE_HTTPONLY or None,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )

    @staticmethod
    async def _expire_at_browser_close(session: Any) -> bool:
        if hasattr(session, "aget_expire_at_browser_close"):
            return bool(await session.aget_expire_at_browser_close())
        return bool(session.get_expire_at_browser_close())  # pragma: no cover - Django < 5.1

    @staticmethod
    async def _expiry_age(session: Any) -> int:
        if hasattr(session, "aget_expiry_age"):
            return int(await session.aget_expiry_age())
        return int(session.get_expiry_age())  # pragma: no cover - Django < 5.1

    async def save_session(self) -> None:
        """Save the session now (``asave()`` when the engine has it).

        Raises ``SuspiciousOperation`` if the session was deleted meanwhile,
        e.g. by a logout in a concurrent request.
        """
        session: Any = self.scope["session"]
        try:
            if _has_own(session._wrapped, "asave"):
                await session.asave()
            else:
                # A third-party engine with only a sync save(): run it in a
                # thread with bayou's connection hygiene.
                from bayou.db import database_sync_to_async

                await database_sync_to_async(session.save)()
        except UpdateError:
            raise SuspiciousOperation(
                "The request's session was deleted before the request completed. "
                "The user may have logged out in a concurrent request, for example."
            ) from None


class SessionMiddleware:
    """Put a lazy Django session in ``scope["session"]``; needs ``scope["cookies"]``.

    Raises ``ValueError`` without cookies in the scope (wrap it in
    :class:`CookieMiddleware`, or use :func:`SessionMiddlewareStack`). A session
    already present in the scope is passed through untouched.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        wrapper = InstanceSessionWrapper(scope, send)
        if not wrapper.activated:
            return await self.inner(wrapper.scope, receive, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, wrapper.send)


def SessionMiddlewareStack(inner: Any) -> CookieMiddleware:
    """``CookieMiddleware(SessionMiddleware(inner))``."""
    return CookieMiddleware(SessionMiddleware(inner))
