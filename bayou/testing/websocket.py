"""``WebsocketCommunicator``: a WebSocket session against an ASGI application, no server."""

from __future__ import annotations

import json
from typing import Any

from bayou.testing.application import ApplicationCommunicator
from bayou.testing.http import normalize_headers, split_path

__all__ = ["WebsocketCommunicator"]


class WebsocketCommunicator(ApplicationCommunicator):
    """Connect to ``application`` as a WebSocket client would, in memory.

    ``WebsocketCommunicator(application, path, headers=None, subprotocols=None,
    spec_version=None)``; ``path`` must be a ``str`` and may carry a query
    string. The scope is a complete ASGI WebSocket scope (``type``, ``asgi``,
    ``http_version``, ``scheme="ws"``, unquoted ``path``, ``raw_path``,
    ``query_string``, ``root_path``, ``headers`` with lower-cased names,
    ``subprotocols``). ``spec_version``, when given, is reported both in
    ``scope["asgi"]["spec_version"]`` (where the ASGI spec puts it) and in
    ``scope["spec_version"]`` (where Channels put it).
    """

    response_headers: list[tuple[bytes, bytes]] | None

    def __init__(
        self,
        application: Any,
        path: str,
        headers: Any = None,
        subprotocols: list[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        if not isinstance(path, str):
            raise TypeError(f"Expected str, got {type(path)}")
        decoded_path, raw_path, query_string = split_path(path)
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": spec_version or "2.5"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": decoded_path,
            "raw_path": raw_path,
            "query_string": query_string,
            "root_path": "",
            "headers": normalize_headers(headers),
            "subprotocols": list(subprotocols or []),
        }
        if spec_version:
            scope["spec_version"] = spec_version
        super().__init__(application, scope)  # type: ignore[no-untyped-call]
        self.response_headers = None

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:  # noqa: ASYNC109
        """Send ``websocket.connect``; ``(True, subprotocol)`` or ``(False, close_code)``.

        A close without a code reports 1000. On acceptance the ``headers`` of
        the ``websocket.accept`` message are kept in ``response_headers``.
        """
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return (False, response.get("code", 1000))
        assert response["type"] == "websocket.accept", (
            f"Expected type 'websocket.accept' or 'websocket.close', but was '{response['type']}'"
        )
        self.response_headers = [(bytes(n), bytes(v)) for n, v in response.get("headers", [])]
        return (True, response.get("subprotocol", None))

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one text or binary message (exactly one of the two arguments).

        Unlike Channels, an empty message (``""`` or ``b""``) is allowed: it is
        a valid WebSocket frame.
        """
        assert (text_data is None) != (bytes_data is None), (
            "You must supply exactly one of text_data or bytes_data"
        )
        if text_data is not None:
            assert isinstance(text_data, str), "The text_data argument must be a str"
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            assert isinstance(bytes_data, bytes), "The bytes_data argument must be bytes"
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send ``data`` encoded as JSON in a text message."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:  # noqa: ASYNC109
        """The payload of the next ``websocket.send``: ``str`` for text, ``bytes`` for binary."""
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", (
            f"Expected type 'websocket.send', but was '{response['type']}'"
        )
        assert ("text" in response and response["text"] is not None) != (
            "bytes" in response and response["bytes"] is not None
        ), "The response needs exactly one of 'text' or 'bytes'"
        if response.get("text") is not None:
            assert isinstance(response["text"], str), "Text frame payload is not str"
            text: str = response["text"]
            return text
        assert isinstance(response["bytes"], bytes), "Binary frame payload is not bytes"
        data: bytes = response["bytes"]
        return data

    async def receive_json_from(self, timeout: float = 1) -> Any:  # noqa: ASYNC109
        """The next text message, decoded from JSON."""
        payload = await self.receive_from(timeout)
        assert isinstance(payload, str), "JSON data is not a text frame"
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:  # noqa: ASYNC109
        """Send ``websocket.disconnect`` and wait for the application to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
