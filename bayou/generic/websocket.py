"""WebSocket consumers: ``WebsocketConsumer``, ``AsyncWebsocketConsumer`` and the JSON variants.

The API is ``channels.generic.websocket``'s. Additions and hardening, all
documented in ``docs/reference/consumers.md``:

* ``deny(status=403, headers=None, body=b"")`` refuses the handshake with a
  custom HTTP response when the server offers the ``websocket.http.response``
  extension, and falls back to a plain close (HTTP 403) otherwise;
* invalid JSON from a client closes that socket with code 1007 and logs one
  line, instead of raising into the server;
* messages sent after the consumer closed the socket are dropped (logged at
  debug level), so a late group event cannot crash the connection;
* ``disconnect()`` runs exactly once per connection: also when a handler
  raised or the connection task was cancelled (with code 1011 then), so
  groups are always left.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from asgiref.sync import async_to_sync

from bayou.consumer import AsyncConsumer, SyncConsumer
from bayou.db import aclose_old_connections, database_sync_to_async
from bayou.exceptions import (
    AcceptConnection,
    DenyConnection,
    InvalidChannelLayerError,
    StopConsumer,
)
from bayou.utils import Message, Receive, Scope, Send, name_that_thing

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]

logger = logging.getLogger("bayou.consumer")

_NO_GROUPS = "BACKEND is unconfigured or doesn't support groups"
#: Close code used for ``disconnect()`` when a handler raised (RFC 6455 "internal error").
_INTERNAL_ERROR = 1011
#: RFC 6455 "invalid frame payload data": sent for text that is not valid JSON.
_INVALID_PAYLOAD = 1007

HeadersLike = Iterable[tuple[bytes | str, bytes | str]] | Mapping[bytes | str, bytes | str]


def _encode_headers(headers: HeadersLike | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (
            name.encode("latin-1") if isinstance(name, str) else name,
            value.encode("latin-1") if isinstance(value, str) else value,
        )
        for name, value in pairs
    ]


def _accept_message(subprotocol: str | None, headers: Any) -> Message:
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _close_message(code: int | bool | None, reason: str | None) -> Message:
    message: Message = {"type": "websocket.close"}
    # ``send(..., close=True)`` passes True: close without an explicit code.
    if code is not None and code is not True:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


def _frame_message(text_data: str | None, bytes_data: bytes | None) -> Message:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("You must pass one of bytes_data or text_data")


def _deny_messages(
    scope: Scope, status: int, headers: HeadersLike | None, body: bytes | str
) -> list[Message] | None:
    """The ``websocket.http.response`` messages, or None when the server lacks the extension."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        return None
    encoded = _encode_headers(headers)
    payload = body.encode("utf-8") if isinstance(body, str) else body
    if payload and not any(name.lower() == b"content-type" for name, _ in encoded):
        encoded.append((b"content-type", b"text/plain; charset=utf-8"))
    return [
        {"type": "websocket.http.response.start", "status": status, "headers": encoded},
        {"type": "websocket.http.response.body", "body": payload, "more_body": False},
    ]


class _WebsocketState:
    """Per-connection bookkeeping shared by the sync and async consumers."""

    groups: list[str] | None = None
    _ws_connected = False
    _ws_accepted = False
    _ws_closed = False
    _ws_disconnected = False
    #: The code this consumer closed with; reported to ``disconnect()`` when
    #: the consumer stopped itself before the client's disconnect arrived.
    _ws_close_code = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups is None:
            self.groups = []

    def _needs_disconnect(self) -> bool:
        return self._ws_connected and not self._ws_disconnected

    def _check_groups(self, layer: Any) -> None:
        if self.groups and (layer is None or not hasattr(layer, "group_add")):
            raise InvalidChannelLayerError(_NO_GROUPS)

    def _client_gone(self, message: Message, exc: OSError) -> None:
        # ASGI servers raise an OSError subclass from send() once the client is
        # gone (spec 2.4). The websocket.disconnect event is already on its
        # way; swallowing the error lets it arrive and be dispatched with the
        # client's real close code, instead of failing the consumer.
        self._ws_closed = True
        logger.debug(
            "%s: %r not sent, the client is gone (%s)",
            name_that_thing(self),
            message.get("type"),
            exc,
        )

    def _drop_after_close(self, message: Message) -> bool:
        if self._ws_closed:
            logger.debug(
                "%s: dropped %r sent after the socket was closed",
                name_that_thing(self),
                message.get("type"),
            )
            return True
        if message["type"] == "websocket.accept":
            self._ws_accepted = True
        elif message["type"] == "websocket.close":
            self._ws_closed = True
            self._ws_close_code = message.get("code", 1000)
        elif message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self._ws_closed = True
        return False


class WebsocketConsumer(_WebsocketState, SyncConsumer):
    """Sync WebSocket consumer: override ``connect``, ``receive`` and ``disconnect``.

    Class attribute ``groups``: group names the connection joins on connect
    and leaves on disconnect (needs a channel layer with groups).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # disconnect() runs exactly once per connection: also when a handler
        # raised, the task was cancelled, or a handler raised StopConsumer.
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            if self._needs_disconnect():
                await database_sync_to_async(self._disconnect_quietly)(_INTERNAL_ERROR)
            raise
        if self._needs_disconnect():
            await database_sync_to_async(self._disconnect_quietly)(self._ws_close_code)

    def _disconnect_quietly(self, code: int) -> None:
        try:
            self._leave_groups_and_disconnect(code)
        except Exception:
            logger.exception("%s: disconnect() failed during cleanup", name_that_thing(self))

    def websocket_connect(self, message: Message) -> None:
        """Join ``groups``, then call ``connect()`` (which may raise Accept/DenyConnection)."""
        self._ws_connected = True
        self._check_groups(self.channel_layer)
        if self.groups:
            layer: Any = self.channel_layer
            for group in self.groups:
                async_to_sync(layer.group_add)(group, self.channel_name)
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        """Called on a new connection; accepts by default."""
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding response headers."""
        self._send_checked(_accept_message(subprotocol, headers))

    def deny(
        self, status: int = 403, headers: HeadersLike | None = None, body: bytes | str = b""
    ) -> None:
        """Refuse the handshake with an HTTP response (plain close -> 403 without the extension).

        Only possible before ``accept()``; raises ``RuntimeError`` afterwards.
        """
        if self._ws_accepted:
            raise RuntimeError("deny() is only possible before accept(); use close() instead")
        messages = _deny_messages(self.scope, status, headers, body)
        if messages is None:
            self.close()
            return
        for message in messages:
            self._send_checked(message)

    def websocket_receive(self, message: Message) -> None:
        """Call ``receive()`` with the frame's text, else its bytes."""
        if message.get("text") is not None:
            self.receive(text_data=message["text"])
        else:
            self.receive(bytes_data=message["bytes"])

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client; does nothing by default."""

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary frame; ``close`` (True or a code) closes afterwards."""
        self._send_checked(_frame_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the connection (before ``accept()`` this denies it with HTTP 403)."""
        self._send_checked(_close_message(code, reason))

    def _send_checked(self, message: Message) -> None:
        if not self._drop_after_close(message):
            try:
                self.base_send(message)
            except OSError as exc:
                self._client_gone(message, exc)

    def websocket_disconnect(self, message: Message) -> None:
        """Leave ``groups``, call ``disconnect(code)`` once, and stop the consumer."""
        if not self._ws_disconnected:
            self._leave_groups_and_disconnect(message.get("code", 1005))
        raise StopConsumer()

    def _leave_groups_and_disconnect(self, code: int) -> None:
        self._ws_disconnected = True
        self._ws_closed = True
        self._check_groups(self.channel_layer)
        if self.groups:
            layer: Any = self.channel_layer
            for group in self.groups:
                async_to_sync(layer.group_discard)(group, self.channel_name)
        self.disconnect(code)

    def disconnect(self, code: int) -> None:
        """Called once when the connection ends; does nothing by default."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """Sync WebSocket consumer that exchanges JSON text frames.

    Override ``receive_json(content)``; send with ``send_json(content)``.
    Text that is not valid JSON closes the socket with code 1007.
    """

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        try:
            content = self.decode_json(text_data)
        except ValueError as exc:
            _log_invalid_json(self, exc)
            self.close(code=_INVALID_PAYLOAD)
            return
        self.receive_json(content, **kwargs)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message; does nothing by default."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode ``content`` with ``encode_json`` and send it as a text frame."""
        self.send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        """Decode incoming text; raise ``ValueError`` for invalid input."""
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        """Encode outgoing content to text."""
        return json.dumps(content)


def _log_invalid_json(consumer: object, exc: Exception) -> None:
    logger.warning(
        "%s: closing WebSocket with 1007, client sent invalid JSON: %s",
        name_that_thing(consumer),
        exc,
    )


class AsyncWebsocketConsumer(_WebsocketState, AsyncConsumer):
    """Async WebSocket consumer: override ``connect``, ``receive`` and ``disconnect`` coroutines.

    Class attribute ``groups``: group names the connection joins on connect
    and leaves on disconnect (needs a channel layer with groups).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # disconnect() runs exactly once per connection: also when a handler
        # raised, the task was cancelled, or a handler raised StopConsumer.
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            if self._needs_disconnect():
                await self._disconnect_quietly(_INTERNAL_ERROR)
            raise
        if self._needs_disconnect():
            await self._disconnect_quietly(self._ws_close_code)

    async def _disconnect_quietly(self, code: int) -> None:
        try:
            await self._leave_groups_and_disconnect(code)
        except Exception:
            logger.exception("%s: disconnect() failed during cleanup", name_that_thing(self))

    async def websocket_connect(self, message: Message) -> None:
        """Join ``groups``, then call ``connect()`` (which may raise Accept/DenyConnection)."""
        self._ws_connected = True
        self._check_groups(self.channel_layer)
        if self.groups:
            layer: Any = self.channel_layer
            for group in self.groups:
                await layer.group_add(group, self.channel_name)
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        """Called on a new connection; accepts by default."""
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding response headers."""
        await self._send_checked(_accept_message(subprotocol, headers))

    async def deny(
        self, status: int = 403, headers: HeadersLike | None = None, body: bytes | str = b""
    ) -> None:
        """Refuse the handshake with an HTTP response (plain close -> 403 without the extension).

        Only possible before ``accept()``; raises ``RuntimeError`` afterwards.
        """
        if self._ws_accepted:
            raise RuntimeError("deny() is only possible before accept(); use close() instead")
        messages = _deny_messages(self.scope, status, headers, body)
        if messages is None:
            await self.close()
            return
        for message in messages:
            await self._send_checked(message)

    async def websocket_receive(self, message: Message) -> None:
        """Call ``receive()`` with the frame's text, else its bytes."""
        text = message.get("text")
        if text is not None:
            await self.receive(text_data=text)
        else:
            await self.receive(bytes_data=message["bytes"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client; does nothing by default."""

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary frame; ``close`` (True or a code) closes afterwards."""
        # The hot path of every consumer: one dict, one await.
        if text_data is not None and not self._ws_closed:
            message = {"type": "websocket.send", "text": text_data}
            try:
                await self.base_send(message)
            except OSError as exc:
                self._client_gone(message, exc)
        else:
            await self._send_checked(_frame_message(text_data, bytes_data))
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the connection (before ``accept()`` this denies it with HTTP 403)."""
        await self._send_checked(_close_message(code, reason))

    async def _send_checked(self, message: Message) -> None:
        if not self._drop_after_close(message):
            try:
                await self.base_send(message)
            except OSError as exc:
                self._client_gone(message, exc)

    async def websocket_disconnect(self, message: Message) -> None:
        """Leave ``groups``, call ``disconnect(code)`` once, and stop the consumer."""
        if not self._ws_disconnected:
            await self._leave_groups_and_disconnect(message.get("code", 1005))
        await aclose_old_connections()
        raise StopConsumer()

    async def _leave_groups_and_disconnect(self, code: int) -> None:
        self._ws_disconnected = True
        self._ws_closed = True
        self._check_groups(self.channel_layer)
        if self.groups:
            layer: Any = self.channel_layer
            for group in self.groups:
                await layer.group_discard(group, self.channel_name)
        await self.disconnect(code)

    async def disconnect(self, code: int) -> None:
        """Called once when the connection ends; does nothing by default."""


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """Async WebSocket consumer that exchanges JSON text frames.

    Override ``receive_json(content)``; send with ``send_json(content)``.
    ``decode_json``/``encode_json`` are async classmethods. Text that is not
    valid JSON closes the socket with code 1007.
    """

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        try:
            content = await self.decode_json(text_data)
        except ValueError as exc:
            _log_invalid_json(self, exc)
            await self.close(code=_INVALID_PAYLOAD)
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message; does nothing by default."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode ``content`` with ``encode_json`` and send it as a text frame."""
        await super().send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        """Decode incoming text; raise ``ValueError`` for invalid input."""
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Encode outgoing content to text."""
        return json.dumps(content)
