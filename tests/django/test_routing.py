"""bayou.routing and bayou.middleware: routers as ASGI applications."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import include, path, re_path
from django.urls.exceptions import Resolver404
from websockets.asyncio.client import connect

from bayou.middleware import BaseMiddleware
from bayou.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    URLRouter,
    get_default_application,
)
from tests.support.servers import serve
from tests.support.timeouts import scaled

T = scaled(1)
SEEN: list[dict[str, Any]] = []


async def recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Records the scope it was called with."""
    SEEN.append(scope)


async def other(scope: dict[str, Any], receive: Any, send: Any) -> None:
    SEEN.append({"other": True, **scope})


async def _route(app: Any, **scope: Any) -> dict[str, Any]:
    SEEN.clear()
    await app(scope, None, None)
    assert len(SEEN) == 1
    return SEEN[0]


async def test_protocol_type_router_dispatches_on_type() -> None:
    """The application for scope["type"] is called; unknown and missing types raise."""
    router = ProtocolTypeRouter({"websocket": recorder, "http": other})
    assert (await _route(router, type="websocket"))["type"] == "websocket"
    assert (await _route(router, type="http"))["other"] is True
    with pytest.raises(ValueError, match="No application configured for scope type 'worker'"):
        await router({"type": "worker"}, None, None)
    with pytest.raises(KeyError):
        await router({}, None, None)


async def test_protocol_type_router_answers_lifespan() -> None:
    """Without a "lifespan" entry the router completes startup and shutdown itself."""
    communicator = ApplicationCommunicator(ProtocolTypeRouter({}), {"type": "lifespan"})
    await communicator.send_input({"type": "lifespan.startup"})
    assert await communicator.receive_output(T) == {"type": "lifespan.startup.complete"}
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert await communicator.receive_output(T) == {"type": "lifespan.shutdown.complete"}
    await communicator.wait(T)


async def test_protocol_type_router_lifespan_entry_wins() -> None:
    """A mapped "lifespan" application receives the lifespan scope itself."""
    router = ProtocolTypeRouter({"lifespan": recorder})
    assert (await _route(router, type="lifespan"))["type"] == "lifespan"


async def test_url_router_path_converters_and_defaults() -> None:
    """path() converters apply, route kwargs merge in, and the leading slash is ignored."""
    router = URLRouter(
        [
            path("rooms/<int:room>/", recorder, kwargs={"mode": "chat"}),
            re_path(r"^legacy/(?P<name>\w+)/$", recorder),
            re_path(r"^positional/(\d+)/$", recorder),
        ]
    )
    scope = await _route(router, type="websocket", path="/rooms/42/")
    assert scope["url_route"] == {"args": (), "kwargs": {"room": 42, "mode": "chat"}}
    assert scope["path_remaining"] == ""
    scope = await _route(router, type="websocket", path="/legacy/bob/")
    assert scope["url_route"]["kwargs"] == {"name": "bob"}
    scope = await _route(router, type="websocket", path="/positional/7/")
    assert scope["url_route"]["args"] == ("7",)


async def test_url_router_no_match() -> None:
    """No matching route: the outermost router raises ValueError naming the path."""
    router = URLRouter([path("a/", recorder)])
    with pytest.raises(ValueError, match=r"No route found for path 'b/'\."):
        await router({"type": "websocket", "path": "/b/"}, None, None)
    with pytest.raises(ValueError, match="No 'path' key"):
        await router({"type": "websocket"}, None, None)


async def test_url_router_nested() -> None:
    """Nested routers match prefixes, accumulate kwargs and fall through with Resolver404."""
    inner = URLRouter([path("detail/<slug:item>/", recorder)])
    router = URLRouter(
        [
            path("shop/<int:shop>/", inner),
            path("shop/<int:shop>/other/", other),
        ]
    )
    scope = await _route(router, type="websocket", path="/shop/3/detail/hat/")
    assert scope["url_route"]["kwargs"] == {"shop": 3, "item": "hat"}
    # The inner router finds nothing, so the outer router tries its next route.
    scope = await _route(router, type="websocket", path="/shop/3/other/")
    assert scope["other"] is True
    with pytest.raises(Resolver404):
        await inner({"type": "websocket", "path_remaining": "nothing/"}, None, None)


async def test_url_router_nested_regex() -> None:
    """re_path() prefixes work for nested routers too."""
    router = URLRouter([re_path(r"^api/(?P<version>v\d)/", URLRouter([path("x/", recorder)]))])
    scope = await _route(router, type="websocket", path="/api/v2/x/")
    assert scope["url_route"]["kwargs"] == {"version": "v2"}


async def test_url_router_root_path() -> None:
    """The outermost router strips scope["root_path"]; a path outside it is an error."""
    router = URLRouter([path("ws/", recorder)])
    scope = await _route(router, type="websocket", path="/prefix/ws/", root_path="/prefix")
    assert scope["path_remaining"] == ""
    with pytest.raises(ValueError, match="No route found"):
        await router({"type": "websocket", "path": "/ws/", "root_path": "/prefix"}, None, None)


def test_url_router_rejects_include() -> None:
    """include() inside a URLRouter raises ImproperlyConfigured with Channels' message."""
    with pytest.raises(ImproperlyConfigured, match=r"include\(\) is not supported in URLRouter"):
        URLRouter([path("x/", include([path("y/", recorder)]))])


async def test_channel_name_router() -> None:
    """Worker scopes are dispatched on scope["channel"]; missing or unknown channels raise."""
    router = ChannelNameRouter({"thumbnails": recorder})
    assert (await _route(router, type="channel", channel="thumbnails"))["channel"] == "thumbnails"
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await router({"type": "channel"}, None, None)
    with pytest.raises(ValueError, match="No application configured for channel name 'x'"):
        await router({"type": "channel", "channel": "x"}, None, None)


@override_settings(ASGI_APPLICATION="tests.django.test_routing.recorder")
def test_get_default_application() -> None:
    """ASGI_APPLICATION is imported from its dotted path."""
    assert get_default_application() is recorder


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Cannot find ASGI_APPLICATION setting."),
        ("nowhere_module_xyz.app", "Cannot import ASGI_APPLICATION module 'nowhere_module_xyz'"),
        ("tests.django.test_routing.missing", "Cannot find 'missing' in ASGI_APPLICATION module"),
    ],
)
def test_get_default_application_errors(value: str | None, message: str) -> None:
    """Missing or broken ASGI_APPLICATION settings raise ImproperlyConfigured."""
    with override_settings(ASGI_APPLICATION=value), pytest.raises(ImproperlyConfigured) as info:
        get_default_application()
    assert message in str(info.value)


async def test_base_middleware_copies_scope() -> None:
    """BaseMiddleware passes a copy: changes made by a subclass do not leak outwards."""

    class AddUser(BaseMiddleware):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
            scope = dict(scope, user="alice")
            return await super().__call__(scope, receive, send)

    original = {"type": "websocket"}
    SEEN.clear()
    await AddUser(recorder)(original, None, None)
    assert SEEN[0]["user"] == "alice"
    assert "user" not in original
    assert SEEN[0] is not original


async def test_e2e_router_without_lifespan_starts_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    """The real server starts and stops a ProtocolTypeRouter without a "lifespan" entry
    without logging any error, and routes WebSocket paths."""

    async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["url_route"]["kwargs"]["name"]})
        await send({"type": "websocket.close"})

    app = ProtocolTypeRouter({"websocket": URLRouter([path("hi/<str:name>/", hello)])})
    with caplog.at_level(logging.INFO):
        async with serve(app) as srv, connect(srv.ws_url + "/hi/ada/") as ws:
            assert await asyncio.wait_for(ws.recv(), T) == "ada"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_url_router_strips_every_leading_slash() -> None:
    """Leading slashes are stripped at every level, so an outer route without a trailing
    slash still lets the inner router match."""
    router = URLRouter([path("shop/<int:shop>", URLRouter([path("detail/", recorder)]))])
    scope = await _route(router, type="websocket", path="/shop/5/detail/")
    assert scope["url_route"]["kwargs"] == {"shop": 5}
    scope = await _route(URLRouter([path("a/", recorder)]), type="websocket", path="//a/")
    assert scope["path_remaining"] == ""
