"""Server-Sent Events: ``format_event``, ``ServerSentEvent`` and ``AsyncSseConsumer``.

An SSE response is one long ``text/event-stream`` HTTP response. Events can
come from three places, all dispatched one at a time like any consumer event:

* channel-layer events (``groups`` are joined when the stream opens), whose
  handlers call ``await self.send_event(...)``;
* an optional ``stream()`` async generator, whose items are sent as events
  (the response ends when it returns);
* keepalive comments, sent when nothing was written for ``keepalive_interval``
  seconds, so proxies do not time the connection out.

See ``docs/topics/sse.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from bayou.exceptions import DenyConnection, InvalidChannelLayerError
from bayou.generic.http import AsyncHttpConsumer
from bayou.utils import Message

__all__ = ["AsyncSseConsumer", "ServerSentEvent", "format_event"]

# The SSE spec accepts CRLF, LF and CR as line ends; each data line gets its own field.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _single_line(field: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE {field} must not contain a line break: {value!r}")
    return value


def format_event(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Encode one event as UTF-8 bytes, ending with the blank line that dispatches it.

    Multi-line ``data`` (any of CRLF, LF, CR) becomes one ``data:`` line per
    line, so the client gets the same text back with LF line ends. ``event``
    and ``id`` must be single lines (``ValueError`` otherwise); ``id`` must not
    contain NUL (clients ignore such ids). ``retry`` is in milliseconds.
    """
    lines: list[str] = []
    if comment is not None:
        lines.extend(f": {line}" if line else ":" for line in _LINE_BREAK.split(comment))
    if event is not None:
        lines.append(f"event: {_single_line('event', event)}")
    if id is not None:
        if "\0" in id:
            raise ValueError("SSE id must not contain NUL")
        lines.append(f"id: {_single_line('id', id)}")
    if retry is not None:
        if not isinstance(retry, int) or retry < 0:
            raise ValueError(f"SSE retry must be a non-negative integer, got {retry!r}")
        lines.append(f"retry: {retry}")
    if data is not None:
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    if not lines:
        raise ValueError("An SSE event needs data, event, id, retry or a comment")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


@dataclass(frozen=True)
class ServerSentEvent:
    """One event, as yielded by ``AsyncSseConsumer.stream()``."""

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def encode(self) -> bytes:
        """The event's wire form (see :func:`format_event`)."""
        return format_event(
            self.data, event=self.event, id=self.id, retry=self.retry, comment=self.comment
        )


class AsyncSseConsumer(AsyncHttpConsumer):
    """An HTTP consumer that answers with a ``text/event-stream``.

    Class attributes:

    * ``groups``: channel-layer groups joined when the stream opens, left on disconnect;
    * ``keepalive_interval``: seconds of silence before a ``: keepalive``
      comment is sent (``None`` disables it);
    * ``retry``: reconnection delay in milliseconds sent to the client when the stream opens;
    * ``extra_headers``: additional response headers.

    Hooks: ``connect()`` runs before the stream opens (send your own response,
    e.g. ``send_response(401, ...)``, or raise ``DenyConnection`` for a 403, to
    refuse); ``stream()`` may be an async generator of events;
    ``disconnect()`` runs once at the end. ``last_event_id`` holds the
    client's ``Last-Event-ID`` header (``None`` without one).
    """

    groups: ClassVar[list[str] | None] = None
    keepalive_interval: ClassVar[float | None] = 15.0
    retry: ClassVar[int | None] = None
    extra_headers: ClassVar[list[tuple[bytes, bytes]]] = []

    last_event_id: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stream_open = asyncio.Event()
        self._stream_iter: AsyncIterator[Any] | None = None
        self._last_write = 0.0
        self._joined: list[str] = []

    # -- hooks ---------------------------------------------------------------

    async def connect(self) -> None:
        """Runs before the stream opens; the default does nothing (the stream opens)."""

    # -- sending -------------------------------------------------------------

    async def send_event(
        self,
        data: str | None = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        """Send one event on the open stream (ignored after the stream has ended)."""
        if self._response_finished:
            return
        await self._write(format_event(data, event=event, id=id, retry=retry, comment=comment))

    async def close(self) -> None:
        """End the stream (the client's EventSource will reconnect unless told otherwise)."""
        if self._response_started and not self._response_finished:
            await self.send_body(b"", more_body=False)

    async def _write(self, chunk: bytes) -> None:
        self._last_write = asyncio.get_running_loop().time()
        await self.send_body(chunk, more_body=True)

    # -- lifecycle -------------------------------------------------------------

    async def handle(self, body: bytes) -> None:
        for name, value in self.scope.get("headers", []):
            if name.lower() == b"last-event-id":
                self.last_event_id = value.decode("utf-8", "replace")
        try:
            await self.connect()
        except DenyConnection:
            await self.send_response(403, b"Forbidden", headers=[(b"content-type", b"text/plain")])
        if self._response_started:
            return  # connect() answered (refused) itself.
        await self._join_groups()
        await self.send_headers(
            status=200,
            headers=[
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                # Tells nginx not to buffer the stream.
                (b"x-accel-buffering", b"no"),
                *self.extra_headers,
            ],
        )
        # The first body chunk makes servers flush the headers at once.
        if self.retry is not None:
            await self._write(format_event(retry=self.retry))
        else:
            await self._write(b": stream opened\n\n")
        stream = getattr(self, "stream", None)
        if stream is not None and inspect.isasyncgenfunction(stream):
            self._stream_iter = stream()
        self._stream_open.set()

    async def disconnect(self) -> None:
        """Called once when the stream ends or the client goes away."""

    async def _disconnect_once(self) -> None:
        if self._disconnected:
            return
        try:
            if self._stream_iter is not None:
                iterator, self._stream_iter = self._stream_iter, None
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    # RuntimeError: the generator is running in the stream
                    # source right now; cancelling that source ends it instead.
                    with contextlib.suppress(RuntimeError):
                        await aclose()
            await self._leave_groups()
        finally:
            await super()._disconnect_once()

    async def _join_groups(self) -> None:
        if not self.groups:
            return
        layer: Any = self.channel_layer
        if layer is None or not hasattr(layer, "group_add"):
            raise InvalidChannelLayerError("BACKEND is unconfigured or doesn't support groups")
        for group in self.groups:
            await layer.group_add(group, self.channel_name)
            self._joined.append(group)

    async def _leave_groups(self) -> None:
        layer: Any = self.channel_layer
        joined, self._joined = self._joined, []
        for group in joined:
            await layer.group_discard(group, self.channel_name)

    # -- internal event sources ---------------------------------------------------

    def _event_sources(self) -> list[Callable[[], Awaitable[Message]]]:
        sources: list[Callable[[], Awaitable[Message]]] = [self._next_stream_item]
        if self.keepalive_interval is not None:
            sources.append(self._next_keepalive)
        return sources

    async def _next_stream_item(self) -> Message:
        await self._stream_open.wait()
        iterator = self._stream_iter
        if iterator is None:
            await asyncio.Future()  # no stream(): this source never yields
        assert iterator is not None
        try:
            item = await anext(iterator)
        except StopAsyncIteration:
            self._stream_iter = None
            return {"type": "sse.stream.end"}
        return {"type": "sse.stream.item", "item": item}

    async def _next_keepalive(self) -> Message:
        await self._stream_open.wait()
        interval = self.keepalive_interval
        assert interval is not None
        loop = asyncio.get_running_loop()
        while True:
            remaining = self._last_write + interval - loop.time()
            if remaining <= 0:
                return {"type": "sse.keepalive"}
            await asyncio.sleep(remaining)

    async def sse_stream_item(self, message: Message) -> None:
        item = message["item"]
        if isinstance(item, ServerSentEvent):
            chunk = item.encode()
        elif isinstance(item, str):
            chunk = format_event(item)
        elif isinstance(item, dict):
            chunk = format_event(**item)
        elif isinstance(item, bytes):
            chunk = item  # already encoded by the application
        else:
            raise TypeError(
                "stream() must yield ServerSentEvent, str, dict or bytes, "
                f"not {type(item).__name__}"
            )
        if not self._response_finished:
            await self._write(chunk)

    async def sse_stream_end(self, message: Message) -> None:
        await self.close()

    async def sse_keepalive(self, message: Message) -> None:
        interval = self.keepalive_interval or 0.0
        idle = asyncio.get_running_loop().time() - self._last_write
        # Something may have been written while this tick waited for its turn.
        if not self._response_finished and idle >= interval:
            await self._write(b": keepalive\n\n")
