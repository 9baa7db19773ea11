"""bayou.generic.sse: event formatting and the AsyncSseConsumer lifecycle."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator as AsgirefCommunicator
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bayou.exceptions import DenyConnection
from bayou.generic.sse import AsyncSseConsumer, ServerSentEvent, format_event
from bayou.layers import get_channel_layer
from tests.support.servers import serve
from tests.support.timeouts import scaled

T = scaled(2)


def _scope(headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/events", "headers": headers or []}


def test_format_event_fields() -> None:
    """event, id, retry and data become one field line each, ending with a blank line."""
    assert format_event("hello", event="greeting", id="7", retry=3000) == (
        b"event: greeting\nid: 7\nretry: 3000\ndata: hello\n\n"
    )


@pytest.mark.parametrize(
    "data", ["one\ntwo\nthree", "one\r\ntwo\r\nthree", "one\rtwo\rthree", "one\ntwo\r\nthree"]
)
def test_format_event_splits_multiline_data(data: str) -> None:
    """Every kind of line break in data starts a new ``data:`` line."""
    assert format_event(data) == b"data: one\ndata: two\ndata: three\n\n"


def test_format_event_edge_cases() -> None:
    """Empty data is one empty data line; comments start with a colon; output is UTF-8."""
    assert format_event("") == b"data: \n\n"
    assert format_event(comment="ping") == b": ping\n\n"
    assert format_event("h\u00e9") == "data: h\u00e9\n\n".encode()
    assert format_event("x\n") == b"data: x\ndata: \n\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "x", "event": "a\nb"},
        {"data": "x", "id": "1\r2"},
        {"data": "x", "id": "1\x002"},
        {"data": "x", "retry": -1},
        {},
    ],
)
def test_format_event_rejects_bad_fields(kwargs: dict[str, Any]) -> None:
    """Line breaks in event/id, NUL in id, negative retry and empty events raise ValueError."""
    with pytest.raises(ValueError):
        format_event(**kwargs)


async def _open(communicator: AsgirefCommunicator) -> dict[str, Any]:
    await communicator.send_input({"type": "http.request", "body": b""})
    start: dict[str, Any] = await communicator.receive_output(T)
    assert start["type"] == "http.response.start"
    return start


async def _chunk(communicator: AsgirefCommunicator) -> bytes:
    message = await communicator.receive_output(T)
    assert message["type"] == "http.response.body"
    body: bytes = message["body"]
    return body


class Ticker(AsyncSseConsumer):
    keepalive_interval = None
    retry = 1500
    finished: list[str] = []

    async def stream(self) -> AsyncIterator[Any]:
        yield ServerSentEvent("first", event="tick", id="1")
        yield "plain"
        yield {"data": "as dict", "id": "3"}

    async def disconnect(self) -> None:
        type(self).finished.append("disconnect")


async def test_stream_generator_events_then_end() -> None:
    """stream() items go out in order after the retry line; the end of stream() ends it."""
    Ticker.finished = []
    communicator = AsgirefCommunicator(Ticker.as_asgi(), _scope())
    start = await _open(communicator)
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert headers[b"cache-control"] == b"no-cache"
    assert await _chunk(communicator) == b"retry: 1500\n\n"
    assert await _chunk(communicator) == b"event: tick\nid: 1\ndata: first\n\n"
    assert await _chunk(communicator) == b"data: plain\n\n"
    assert await _chunk(communicator) == b"id: 3\ndata: as dict\n\n"
    final = await communicator.receive_output(T)
    assert final == {"type": "http.response.body", "body": b"", "more_body": False}
    await communicator.wait(T)
    assert Ticker.finished == ["disconnect"]


class GroupFeed(AsyncSseConsumer):
    groups = ["bayou-sse-news"]
    keepalive_interval = None
    seen_last_event_id: asyncio.Queue[str | None]
    finished: list[str] = []

    async def connect(self) -> None:
        await type(self).seen_last_event_id.put(self.last_event_id)

    async def news_item(self, event: dict[str, Any]) -> None:
        await self.send_event(event["text"], event="news", id=event["id"])

    async def disconnect(self) -> None:
        type(self).finished.append("disconnect")


async def test_group_events_last_event_id_and_clean_disconnect() -> None:
    """Group events become SSE events; Last-Event-ID reaches the handler; a client
    disconnect calls disconnect() once and leaves the groups."""
    GroupFeed.seen_last_event_id = asyncio.Queue()
    GroupFeed.finished = []
    communicator = AsgirefCommunicator(GroupFeed.as_asgi(), _scope([(b"last-event-id", b"41")]))
    await _open(communicator)
    assert await _chunk(communicator) == b": stream opened\n\n"
    assert await GroupFeed.seen_last_event_id.get() == "41"
    layer: Any = get_channel_layer()
    await layer.group_send("bayou-sse-news", {"type": "news.item", "text": "a\nb", "id": "42"})
    assert await _chunk(communicator) == b"event: news\nid: 42\ndata: a\ndata: b\n\n"
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(T)
    assert GroupFeed.finished == ["disconnect"]
    assert not layer.groups.get("bayou-sse-news")


async def test_keepalive_comment_when_idle() -> None:
    """With nothing to send for keepalive_interval seconds, a ``: keepalive`` comment is sent."""

    class Quiet(AsyncSseConsumer):
        keepalive_interval = 0.01

    communicator = AsgirefCommunicator(Quiet.as_asgi(), _scope())
    await _open(communicator)
    assert await _chunk(communicator) == b": stream opened\n\n"
    assert await _chunk(communicator) == b": keepalive\n\n"
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(T)


async def test_connect_can_refuse() -> None:
    """DenyConnection in connect() answers 403; a response sent by connect() is kept."""

    class Refuser(AsyncSseConsumer):
        async def connect(self) -> None:
            raise DenyConnection()

    class Unauthorized(AsyncSseConsumer):
        async def connect(self) -> None:
            await self.send_response(401, b"log in first")

    communicator = AsgirefCommunicator(Refuser.as_asgi(), _scope())
    assert (await _open(communicator))["status"] == 403
    assert (await communicator.receive_output(T))["more_body"] is False
    await communicator.wait(T)
    communicator = AsgirefCommunicator(Unauthorized.as_asgi(), _scope())
    assert (await _open(communicator))["status"] == 401
    assert await _chunk(communicator) == b"log in first"
    await communicator.wait(T)


async def test_disconnect_while_stream_generator_waits() -> None:
    """A client disconnect ends a stream() that is waiting, and disconnect() runs once."""
    cleaned: list[str] = []

    class Slow(AsyncSseConsumer):
        keepalive_interval = None

        async def stream(self) -> AsyncIterator[Any]:
            try:
                yield "start"
                await asyncio.Event().wait()
                yield "never"
            finally:
                cleaned.append("generator closed")

        async def disconnect(self) -> None:
            cleaned.append("disconnect")

    communicator = AsgirefCommunicator(Slow.as_asgi(), _scope())
    await _open(communicator)
    await _chunk(communicator)
    assert await _chunk(communicator) == b"data: start\n\n"
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(T)
    assert cleaned.count("disconnect") == 1
    assert "generator closed" in cleaned


class Countdown(AsyncSseConsumer):
    """Sends three numbered events after the client's Last-Event-ID, then waits."""

    keepalive_interval = None
    disconnected: asyncio.Event

    async def stream(self) -> AsyncIterator[Any]:
        start = int(self.last_event_id or 0) + 1
        for number in range(start, start + 3):
            yield ServerSentEvent(f"n={number}\nline two", id=str(number))
        await asyncio.Event().wait()  # keep the stream open until the client leaves
        yield "unreachable"

    async def disconnect(self) -> None:
        type(self).disconnected.set()


async def _read_until(reader: asyncio.StreamReader, needle: bytes) -> bytes:
    data = b""
    for _ in range(1000):  # bounded: each read returns at least one byte
        if needle in data:
            return data
        chunk = await asyncio.wait_for(reader.read(65536), T)
        assert chunk, f"connection closed before {needle!r}; got {data!r}"
        data += chunk
    raise AssertionError(f"{needle!r} not received")


async def test_e2e_sse_over_the_real_server() -> None:
    """Over a real socket: the event-stream headers, Last-Event-ID, multi-line data as
    several data lines, and disconnect() when the client closes the connection."""
    Countdown.disconnected = asyncio.Event()
    async with serve(Countdown.as_asgi()) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: test\r\nLast-Event-ID: 41\r\n\r\n")
        data = await _read_until(reader, b"id: 44\ndata: n=44\ndata: line two\n\n")
        head = data.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 200")
        assert b"content-type: text/event-stream; charset=utf-8" in head
        assert b"id: 42\ndata: n=42\ndata: line two\n\n" in data
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(Countdown.disconnected.wait(), T)


def _parse_stream(raw: bytes) -> list[dict[str, str]]:
    """A minimal EventSource parser following the HTML spec's field rules."""
    events: list[dict[str, str]] = []
    data: list[str] = []
    fields: dict[str, str] = {}
    text = raw.decode("utf-8")
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data or fields:
                events.append({**fields, "data": "\n".join(data)} if data else dict(fields))
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


_field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
)


@settings(max_examples=200, deadline=None)
@example(data="a\r\nb\rc\n", event=" spaced")
@example(data=": not a comment", event="")
@given(data=st.text(alphabet=st.characters(blacklist_categories=("Cs",))), event=_field_text)
def test_format_event_round_trips_through_a_parser(data: str, event: str) -> None:
    """Whatever the data (any line breaks, colons, unicode), a spec parser reads back the
    same text with every line break normalised to LF, and the same event name."""
    parsed = _parse_stream(format_event(data, event=event or None))
    expected = re.sub(r"\r\n|\r", "\n", data)
    assert len(parsed) == 1
    assert parsed[0]["data"] == expected
    if event:
        # format_event writes "event: " and the parser strips exactly that space,
        # so leading spaces of the name itself survive.
        assert parsed[0]["event"] == event
