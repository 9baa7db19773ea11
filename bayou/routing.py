"""Routers: ASGI applications that pick an inner application per connection.

Same API and error messages as ``channels.routing``:

* :class:`ProtocolTypeRouter` on ``scope["type"]`` (``"http"``, ``"websocket"``, ...);
* :class:`URLRouter` on the path, with Django ``path()``/``re_path()`` routes;
* :class:`ChannelNameRouter` on ``scope["channel"]`` (worker scopes).

One addition: a ``ProtocolTypeRouter`` without a ``"lifespan"`` entry answers
the lifespan protocol itself (startup and shutdown complete at once). Servers
started with lifespan "auto" would otherwise log the ``ValueError`` raised for
the unknown scope type as an application error on every start. Put your own
application under ``"lifespan"`` to handle the events yourself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from asgiref.compatibility import guarantee_single_callable
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern, URLResolver

from bayou.utils import ASGIApp, Receive, Scope, Send

__all__ = [
    "ChannelNameRouter",
    "ProtocolTypeRouter",
    "URLRouter",
    "get_default_application",
]


def get_default_application() -> Any:
    """The application named by ``settings.ASGI_APPLICATION`` (``"module.attribute"``).

    Raises ``ImproperlyConfigured`` when the setting is missing or cannot be imported.
    """
    try:
        path, name = settings.ASGI_APPLICATION.rsplit(".", 1)
    except (ValueError, AttributeError):
        raise ImproperlyConfigured("Cannot find ASGI_APPLICATION setting.") from None
    try:
        module = importlib.import_module(path)
    except ImportError:
        raise ImproperlyConfigured(f"Cannot import ASGI_APPLICATION module {path!r}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImproperlyConfigured(
            f"Cannot find {name!r} in ASGI_APPLICATION module {path}"
        ) from None


async def _answer_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    # No lifespan application configured: acknowledge both events so the
    # server neither waits nor logs an error.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class ProtocolTypeRouter:
    """Dispatch on ``scope["type"]`` using ``application_mapping`` (type -> ASGI app).

    An unknown type raises ``ValueError``; a scope without ``"type"`` raises
    ``KeyError``. ``"lifespan"`` is answered by the router when not mapped.
    """

    def __init__(self, application_mapping: Mapping[str, Any]) -> None:
        for scope_type, application in application_mapping.items():
            _reject_consumer_class(application, f"ProtocolTypeRouter[{scope_type!r}]")
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        application = self.application_mapping.get(scope_type)
        if application is not None:
            await application(scope, receive, send)
        elif scope_type == "lifespan":
            await _answer_lifespan(scope, receive, send)
        else:
            raise ValueError(f"No application configured for scope type {scope_type!r}")


def _reject_consumer_class(callback: Any, where: object) -> None:
    """A consumer class routed without ``.as_asgi()`` (the Channels 2 style) fails here,
    with the fix in the message, instead of on the first connection."""
    from bayou.consumer import AsyncConsumer

    if isinstance(callback, type) and issubclass(callback, AsyncConsumer):
        raise ImproperlyConfigured(
            f"{where}: {callback.__qualname__} is a consumer class, not an ASGI application. "
            f"Route {callback.__qualname__}.as_asgi() instead."
        )


def _as_prefix_pattern(pattern: Any) -> Any:
    """The same pattern, matching a prefix (``is_endpoint=False``) for a nested router."""
    # ``_regex``/``_route`` hold the source the user wrote (Django keeps no public name).
    source: Any = pattern
    if isinstance(pattern, RegexPattern):
        return RegexPattern(source._regex, pattern.name, is_endpoint=False)
    if isinstance(pattern, RoutePattern):
        return RoutePattern(source._route, pattern.name, is_endpoint=False)
    raise ValueError(f"Unsupported pattern type: {type(pattern)}")


class URLRouter:
    """Route on the connection's path with Django ``path()`` and ``re_path()`` entries.

    The path matched is ``scope["path_remaining"]`` when an outer router set
    it, else ``scope["path"]`` minus ``scope["root_path"]``, without leading
    slashes. The chosen application gets ``scope["url_route"]``
    (``{"args": ..., "kwargs": ...}``, converters applied, route defaults
    merged, outer routers' values kept) and ``scope["path_remaining"]``.

    Nest routers with ``path("prefix/", URLRouter([...]))``; ``include()`` is
    not supported. When nothing matches, the outermost router raises
    ``ValueError("No route found for path ...")`` and an inner one raises
    ``Resolver404`` so the outer router tries its next route.
    """

    #: Marks applications that route further: their pattern matches a prefix.
    _path_routing = True

    def __init__(self, routes: Iterable[Any]) -> None:
        self.routes = list(routes)
        for route in self.routes:
            if isinstance(route, URLResolver) or not getattr(route, "callback", None):
                raise ImproperlyConfigured(
                    f"{route}: include() is not supported in URLRouter. "
                    "Use nested URLRouter instances instead."
                )
            _reject_consumer_class(route.callback, route)
            if getattr(route.callback, "_path_routing", False) is True:
                route.pattern = _as_prefix_pattern(route.pattern)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path_remaining")
        outermost = path is None
        if path is None:
            full_path = scope.get("path")
            if full_path is None:
                raise ValueError("No 'path' key in connection scope, cannot route URLs")
            root_path = scope.get("root_path") or ""
            if root_path:
                if not full_path.startswith(root_path):
                    raise ValueError(f"No route found for path {full_path!r}.")
                full_path = full_path[len(root_path) :]
            path = full_path
        # Django's patterns never start with "/": strip them all, at every level.
        path = path.lstrip("/")
        url_route = scope.get("url_route") or {}
        outer_args = tuple(url_route.get("args", ()))
        outer_kwargs = dict(url_route.get("kwargs", {}))
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            kwargs = {**outer_kwargs, **kwargs, **(route.default_args or {})}
            # As in Channels: an ASGI 2 (double-callable) application is adapted.
            inner: ASGIApp = guarantee_single_callable(route.callback)  # type: ignore[no-untyped-call]
            inner_scope = dict(
                scope,
                path_remaining=remaining,
                url_route={"args": outer_args + tuple(args), "kwargs": kwargs},
            )
            try:
                await inner(inner_scope, receive, send)
                return
            except Resolver404:
                # An inner router found nothing: try the next route.
                continue
        if outermost:
            raise ValueError(f"No route found for path {path!r}.")
        raise Resolver404(f"No route found for path {path!r}.")


class ChannelNameRouter:
    """Dispatch worker scopes on ``scope["channel"]`` (channel name -> ASGI app)."""

    def __init__(self, application_mapping: Mapping[str, Any]) -> None:
        for channel, application in application_mapping.items():
            _reject_consumer_class(application, f"ChannelNameRouter[{channel!r}]")
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key. "
                "Did you make sure it's only being used for 'channel' type messages?"
            )
        application = self.application_mapping.get(scope["channel"])
        if application is None:
            raise ValueError(f"No application configured for channel name {scope['channel']!r}")
        await application(scope, receive, send)
