"""``AsyncHttpConsumer``: a low-level HTTP consumer (responses, streaming, long-poll).

Same API as ``channels.generic.http``. One documented fix: when ``handle()``
returns after starting a response with ``more_body=True`` and without
finishing it, the consumer stays alive and keeps dispatching channel-layer
events until one of them finishes the response (``send_body(...,
more_body=False)``) or the client disconnects. Channels 4.3.2 stops the
consumer right after ``handle()``, which breaks its own documented long-poll
example. ``disconnect()`` runs exactly once per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bayou.consumer import AsyncConsumer
from bayou.db import aclose_old_connections
from bayou.exceptions import StopConsumer
from bayou.utils import Message

__all__ = ["AsyncHttpConsumer"]


class AsyncHttpConsumer(AsyncConsumer):
    """Override ``handle(body)``; reply with ``send_response`` or ``send_headers``+``send_body``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # cooperative, as in Channels (mixins)
        self.body: list[bytes] = []
        self._request_complete = False
        self._response_started = False
        self._response_finished = False
        self._disconnected = False

    async def send_headers(
        self,
        *,
        status: int = 200,
        headers: Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes] | None = None,
    ) -> None:
        """Start the response; ``headers`` is a list of ``(name, value)`` byte pairs or a dict."""
        if headers is None:
            header_list: list[Any] = []
        elif isinstance(headers, Mapping):
            header_list = list(headers.items())
        else:
            header_list = list(headers)
        self._response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": header_list})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a body chunk; ``more_body=False`` (the default) finishes the response."""
        assert isinstance(body, bytes), "Body is not bytes"
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})
        if not more_body:
            self._response_finished = True

    async def send_response(self, status: int, body: bytes, **kwargs: Any) -> None:
        """Send a whole response at once (``headers=`` as for ``send_headers``)."""
        await self.send_headers(status=status, **kwargs)
        await self.send_body(body)

    async def handle(self, body: bytes) -> None:
        """Called with the whole request body; must be overridden."""
        raise NotImplementedError("Subclasses of AsyncHttpConsumer must provide a handle() method.")

    async def disconnect(self) -> None:
        """Called once, after the response is finished or when the client goes away."""

    async def http_request(self, message: Message) -> None:
        """Collect body chunks; on the last one, call ``handle()`` (then ``disconnect()``)."""
        if "body" in message:
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        self._request_complete = True
        try:
            await self.handle(b"".join(self.body))
        except BaseException:
            await self._disconnect_once()
            raise
        if self._response_started and not self._response_finished:
            # An open response (long-poll, streaming, SSE): keep dispatching
            # events until one finishes it or the client disconnects.
            return
        await self._disconnect_once()
        raise StopConsumer()

    async def http_disconnect(self, message: Message) -> None:
        """The client went away: ``disconnect()`` (once) and stop."""
        await self._disconnect_once()
        await aclose_old_connections()
        raise StopConsumer()

    async def dispatch(self, message: Message) -> None:
        await super().dispatch(message)
        if self._request_complete and self._response_finished:
            # A channel-layer event finished a response left open by handle().
            await self._disconnect_once()
            raise StopConsumer()

    async def _disconnect_once(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            await self.disconnect()
