"""bayou.security.websocket: Origin validation for WebSocket handshakes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from django.test import override_settings

from bayou.generic.websocket import AsyncWebsocketConsumer
from bayou.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)
from bayou.testing import WebsocketCommunicator
from tests.support.timeouts import scaled

T = scaled(2)


async def _connects(app: Any, origin: bytes | None) -> bool:
    headers = [(b"origin", origin)] if origin is not None else []
    communicator = WebsocketCommunicator(app, "/", headers=headers)
    connected, _ = await communicator.connect(T)
    await communicator.disconnect(timeout=T)
    return connected


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        (["example.com"], b"http://example.com", True),
        (["example.com"], b"https://example.com:8443", True),
        (["example.com"], b"http://evil.com", False),
        (["example.com"], b"http://sub.example.com", False),
        ([".example.com"], b"http://sub.example.com", True),
        ([".example.com"], b"http://example.com", True),
        (["http://example.com"], b"http://example.com", True),
        (["http://example.com"], b"http://example.com:80", True),
        (["http://example.com"], b"https://example.com", False),
        (["https://example.com:8443"], b"https://example.com:8443", True),
        (["https://example.com:8443"], b"https://example.com", False),
        (["*"], b"http://anything.test", True),
        (["*"], None, True),
        (["example.com"], None, False),
        (["example.com"], b"", False),
        (["example.com"], b"null", False),
        (["example.com"], b"http://example.com:notaport", False),
    ],
)
async def test_origin_validator(allowed: list[str], origin: bytes | None, expected: bool) -> None:
    """Only Origins matching a pattern connect; others are closed before accept (403)."""
    app = OriginValidator(AsyncWebsocketConsumer.as_asgi(), allowed)
    assert await _connects(app, origin) is expected


async def test_origin_validator_refuses_non_websocket() -> None:
    """Using OriginValidator on an HTTP scope raises ValueError."""
    app = OriginValidator(AsyncWebsocketConsumer.as_asgi(), ["*"])
    with pytest.raises(ValueError, match="non-WebSocket"):
        await app({"type": "http"}, None, None)


def test_origin_helpers() -> None:
    """get_origin_port defaults by scheme; match_allowed_origin handles None."""
    validator = OriginValidator(None, [])
    assert validator.get_origin_port(urlparse("wss://x")) == 443
    assert validator.get_origin_port(urlparse("ws://x")) == 80
    assert validator.get_origin_port(urlparse("ftp://x")) is None
    assert validator.get_origin_port(urlparse("http://x:81")) == 81
    assert validator.match_allowed_origin(None, "example.com") is False


@override_settings(ALLOWED_HOSTS=["allowed.test"], DEBUG=False)
async def test_allowed_hosts_origin_validator() -> None:
    """AllowedHostsOriginValidator uses settings.ALLOWED_HOSTS."""
    app = AllowedHostsOriginValidator(AsyncWebsocketConsumer.as_asgi())
    assert await _connects(app, b"http://allowed.test")
    assert not await _connects(app, b"http://other.test")


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
async def test_allowed_hosts_debug_defaults() -> None:
    """With DEBUG and empty ALLOWED_HOSTS, localhost, 127.0.0.1 and [::1] are allowed."""
    app = AllowedHostsOriginValidator(AsyncWebsocketConsumer.as_asgi())
    assert app.allowed_origins == ["localhost", "127.0.0.1", "[::1]"]
    assert await _connects(app, b"http://localhost:8000")
    assert await _connects(app, b"http://[::1]:8000")
    assert not await _connects(app, b"http://example.com")


async def test_websocket_denier() -> None:
    """WebsocketDenier closes every connection before accepting it."""
    communicator = WebsocketCommunicator(WebsocketDenier.as_asgi(), "/")
    assert await communicator.connect(T) == (False, 1000)
    await communicator.disconnect(timeout=T)
