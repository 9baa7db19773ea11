"""Raw ASGI 3 applications for server tests (importable as ``tests.apps:NAME``,
so the same apps serve in-process and behind the CLI subprocess).

``app`` routes on the path:

* HTTP ``/echo``: responds 200 with the request body (``content-type`` echoed);
* HTTP ``/scope``: responds with a JSON dump of the scope plus ``"pid"``;
* HTTP ``/slow?SECONDS``: prints "slow request started" to stderr, sleeps
  SECONDS, then responds ``done``;
* HTTP anything else: ``hello``;
* WebSocket ``/scope``: accepts, sends the JSON scope dump, waits for close;
* WebSocket anything else: accepts and echoes every message;
* lifespan: completes startup with ``state["started"] = True`` and shutdown.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

__all__ = [
    "app",
    "echo_http",
    "echo_websocket",
    "failing_startup_app",
    "no_lifespan_app",
    "scope_dump",
]

Scope = dict[str, Any]
Receive = Any
Send = Any


def scope_dump(scope: Scope) -> dict[str, Any]:
    """The JSON-safe part of a scope (bytes decoded as latin-1)."""

    def convert(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return repr(value)

    dumped: dict[str, Any] = convert(scope)
    dumped["pid"] = os.getpid()
    return dumped


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def _respond(send: Send, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def echo_http(scope: Scope, receive: Receive, send: Send) -> None:
    """HTTP only: the response body is the request body."""
    assert scope["type"] == "http"
    body = await _read_body(receive)
    content_type = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
    await _respond(send, body, content_type)


async def echo_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket only: accept, then send back every text/bytes message."""
    assert scope["type"] == "websocket"
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            return


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The routing test application described in the module docstring."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
    elif scope["type"] == "http":
        path = scope["path"]
        if path.endswith("/echo"):
            await echo_http(scope, receive, send)
        elif path.endswith("/scope"):
            await _read_body(receive)
            await _respond(send, json.dumps(scope_dump(scope)).encode(), b"application/json")
        elif path.endswith("/slow"):
            await _read_body(receive)
            # Subprocess tests wait for this line to know the request is in flight.
            print("slow request started", file=sys.stderr, flush=True)
            await asyncio.sleep(float(scope["query_string"] or b"1"))
            await _respond(send, b"done")
        else:
            await _read_body(receive)
            await _respond(send, b"hello")
    elif scope["type"] == "websocket":
        if scope["path"].endswith("/scope"):
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(scope_dump(scope))})
            while (await receive())["type"] != "websocket.disconnect":
                pass
        else:
            await echo_websocket(scope, receive, send)


async def no_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Raises on the lifespan scope, as Django's ASGIHandler does; serves HTTP."""
    if scope["type"] == "lifespan":
        raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")
    await app(scope, receive, send)


async def failing_startup_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers lifespan startup with ``lifespan.startup.failed``."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await app(scope, receive, send)
