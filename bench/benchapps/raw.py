"""Raw ASGI apps: the same code runs on bayou, uvicorn and daphne, so only the server differs.

``app`` answers every HTTP request with a fixed 13-byte body and echoes every
WebSocket message back in the frame type it came in; idle connections just wait.
Lifespan is accepted and ignored so no server logs a warning about it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["app"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY = b"Hello, world!"
_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_RESPONSE_BODY: Message = {"type": "http.response.body", "body": _BODY}


async def _http(receive: Receive, send: Send) -> None:
    # wrk sends bodyless GETs; read until the request is complete anyway so the
    # app behaves like a real one for servers that pre-buffer nothing.
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send(_START)
    await send(_RESPONSE_BODY)


async def _websocket(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes")})
        elif kind == "websocket.disconnect":
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(receive, send)
    elif kind == "websocket":
        await _websocket(receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
