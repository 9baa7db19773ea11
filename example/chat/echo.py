"""A WebSocket echo written as a bare ASGI application, no consumer class.

It shows what the server hands to an application: ``websocket.connect``,
``websocket.receive`` (``text`` or ``bytes``) and ``websocket.disconnect``.
"""

from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]


async def echo_application(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Accept, then send every message back unchanged until the client leaves."""
    if scope["type"] != "websocket":
        raise ValueError(f"echo_application only speaks WebSocket, not {scope['type']!r}")
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
        elif event["type"] == "websocket.disconnect":
            return
