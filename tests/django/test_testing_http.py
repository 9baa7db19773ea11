"""bayou.testing.HttpCommunicator: one request against an ASGI application."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

from bayou.testing import HttpCommunicator


def view(request: HttpRequest, name: str) -> HttpResponse:
    body = f"{request.method} {request.path} {request.GET.get('q')} {request.headers.get('X-Test')}"
    return HttpResponse(body, headers={"X-Reply": "yes"})


urlpatterns = [path("hello/<str:name>/", view)]


def make_scope_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 201})
        await send({"type": "http.response.body", "body": b"done"})

    return app


async def test_scope_is_a_complete_http_scope() -> None:
    """The scope has every key the ASGI HTTP spec defines for a request: upper-cased
    method, unquoted path, raw path, query string, lower-cased byte headers."""
    seen: list[dict[str, Any]] = []
    communicator = HttpCommunicator(
        make_scope_app(seen),
        "post",
        "/a%20b/?x=1&y=%20",
        body=b"payload",
        headers=[(b"X-Test", b"1"), ("content-type", "text/plain")],
    )
    response = await communicator.get_response()
    scope, request = seen
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/"
    assert scope["raw_path"] == b"/a%20b/"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["headers"] == [(b"x-test", b"1"), (b"content-type", b"text/plain")]
    assert request == {"type": "http.request", "body": b"payload"}
    assert response == {"status": 201, "headers": [], "body": b"done"}


async def test_chunked_body_is_joined() -> None:
    """Body chunks sent with more_body are joined into one body."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in (b"a", b"b", b""):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"c"})

    response = await HttpCommunicator(app, "GET", "/").get_response()
    assert response["status"] == 200
    assert response["headers"] == [(b"content-type", b"text/plain")]
    assert response["body"] == b"abc"


async def test_body_must_be_bytes() -> None:
    """A str body is a test bug, reported at once."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(TypeError):
        HttpCommunicator(app, "GET", "/", body="text")  # type: ignore[arg-type]


async def test_wrong_first_message_is_reported() -> None:
    """A response that does not start with http.response.start fails with its type."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.body", "body": b""})

    with pytest.raises(AssertionError, match=r"but was 'http\.response\.body'"):
        await HttpCommunicator(app, "GET", "/").get_response()


@override_settings(ROOT_URLCONF=__name__)
async def test_drives_a_django_view() -> None:
    """Django's own ASGI handler runs under the communicator: routing, query
    string, headers and response headers all go through."""
    communicator = HttpCommunicator(
        ASGIHandler(), "GET", "/hello/world/?q=search", headers=[(b"x-test", b"on")]
    )
    response = await communicator.get_response(timeout=5)
    assert response["status"] == 200
    assert response["body"] == b"GET /hello/world/ search on"
    assert (b"X-Reply", b"yes") in response["headers"]
