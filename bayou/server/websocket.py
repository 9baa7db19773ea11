"""WebSocket connections: the asyncio side of :mod:`bayou.protocol.websocket`.

``HttpProtocol`` hands over an upgraded connection with
``WebSocketProtocol(config, state, app).start(transport, request, scope, leftover)``;
from then on this protocol owns the transport and runs the ASGI application
(websocket spec 2.5, plus the ``websocket.http.response`` denial extension).

Speed is a design goal. A message travels from ``data_received`` to an
awaiting ``receive()`` with a single future resolution (no queue in between
when the application is already waiting), and ``send()`` frames and writes
synchronously, only suspending when the transport is above its high-water
mark. No task is created per message.

Flow control (docs/topics/flow-control.md):

* outgoing: the transport's high-water mark is ``limits.ws_send_high_water``;
  above it ``send()`` waits for ``resume_writing``. Frames the protocol sends
  on its own (pongs) are capped by ``limits.ws_max_send_buffer``: above it we
  stop reading from a peer that does not read.
* incoming: at most ``limits.ws_incoming_queue`` complete messages, and about
  ``limits.ws_incoming_queue_bytes`` of their payload, wait for the application
  before reading pauses; before the application accepts, at most
  ``limits.ws_early_data`` bytes are kept.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import sys
import time
from typing import Any

from bayou.protocol.errors import LocalProtocolError
from bayou.protocol.http11.events import Request
from bayou.protocol.http11.writer import check_header
from bayou.protocol.websocket.connection import (
    BinaryMessage,
    CloseReceived,
    ConnectionFailed,
    Pong,
    TextMessage,
    WebSocketConnection,
)
from bayou.protocol.websocket.deflate import PerMessageDeflate, negotiate_deflate
from bayou.protocol.websocket.frames import is_valid_close_code
from bayou.protocol.websocket.handshake import (
    HandshakeError,
    build_accept_response,
    build_http_response,
    validate_handshake,
)
from bayou.server.config import Config
from bayou.server.state import ServerState

__all__ = ["ClientDisconnected", "WebSocketProtocol"]

logger = logging.getLogger("bayou.server")

Message = dict[str, Any]

# Connection phases.
_CONNECTING = 0  # waiting for the app's accept / close / denial response
_RESPONSE = 1  # the app is sending a denial response (websocket.http.response.*)
_OPEN = 2  # accepted
_CLOSING = 3  # we sent a close frame; waiting for the peer's
_CLOSED = 4  # transport closing or closed

# Reasons reading is paused (a bit each; reading resumes when none is left).
_PAUSE_QUEUE = 1  # too many messages waiting for the app
_PAUSE_SEND = 2  # peer does not read our pongs
_PAUSE_EARLY = 4  # bytes arriving before the app accepted

_AFTER_CLOSE = frozenset(
    {
        "websocket.send",
        "websocket.accept",
        "websocket.http.response.start",
        "websocket.http.response.body",
    }
)


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the WebSocket is closed (ASGI spec 2.4+).

    The server does not log it when the application lets it propagate.
    """


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection and its application task."""

    def __init__(self, config: Config, state: ServerState, app: Any) -> None:
        self.config = config
        self.state = state
        self.app = app
        self.limits = config.limits
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.scope: dict[str, Any] = {}
        self.conn: WebSocketConnection | None = None
        self._phase = _CONNECTING
        self._key = b""
        self._deflate: PerMessageDeflate | None = None
        self._deflate_header: str | None = None
        self._queue: collections.deque[Message] = collections.deque()
        self._waiter: asyncio.Future[Message] | None = None
        self._queue_limit = max(1, self.limits.ws_incoming_queue)
        self._queue_bytes = 0  # payload size of the queued messages (see _size)
        self._queue_bytes_limit = max(1, self.limits.ws_incoming_queue_bytes)
        self._paused = 0
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._early: list[bytes] = []
        self._early_size = 0
        self._disconnected = False  # the disconnect message was queued/delivered
        self._close_code = 1006
        self._close_reason = ""
        self._task: asyncio.Task[None] | None = None
        self._cancelled_by_us = False
        self._violation: str | None = None  # the app's ASGI misuse, logged by _run_app
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ping_payload: bytes | None = None
        self._started = time.monotonic()
        self._accepted = False

    # -- start -----------------------------------------------------------------

    def start(
        self,
        transport: asyncio.Transport,
        request: Request,
        scope: dict[str, Any],
        leftover: bytes = b"",
    ) -> None:
        """Take over ``transport`` after ``request`` (an upgrade) was parsed.

        Answers 400/426 itself for an invalid handshake; otherwise fills
        ``scope["subprotocols"]``, registers in ``state.connections`` and starts
        the application with ``websocket.connect`` waiting in its queue.
        """
        self.transport = transport
        self.scope = scope
        transport.set_protocol(self)
        try:
            handshake = validate_handshake(request)
        except HandshakeError as exc:
            body = f"{exc}\n".encode()
            headers = [*exc.headers, (b"content-type", b"text/plain; charset=utf-8")]
            transport.write(build_http_response(exc.status_hint, headers, body))
            self._phase = _CLOSED
            transport.close()
            return
        self._key = handshake.key
        scope["subprotocols"] = handshake.subprotocols
        if self.config.websocket_per_message_deflate and handshake.extensions:
            negotiated = negotiate_deflate(handshake.extensions)
            if negotiated is not None:
                self._deflate, self._deflate_header = negotiated
        self.state.connections.add(self)
        transport.set_write_buffer_limits(high=self.limits.ws_send_high_water)
        self._queue.append({"type": "websocket.connect"})
        self.state.access_log.websocket(
            scope.get("client"), "WSCONNECTING", scope.get("path", ""), self._started
        )
        if leftover:
            self._early_data(leftover)
        task = self.loop.create_task(self._run_app())
        self._task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)
        if self.config.websocket_connect_timeout:
            self._timer("connect", self.config.websocket_connect_timeout, self._connect_timeout)
        if not transport.is_reading() and not self._paused:
            transport.resume_reading()
        if self.state.shutting_down:
            # Handed over after Server.shutdown() told every connection it
            # knew of to close: this one must not wait for the abort.
            self.shutdown()

    # -- asyncio.Protocol --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._phase >= _OPEN:
            if self._phase == _CLOSED:
                return
            self._frames_received(data)
        elif self._phase == _CONNECTING:
            self._early_data(data)
        # During a denial response the client's bytes are irrelevant.

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _CLOSED
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.state.connections.discard(self)
        self._wake_writers()
        self._disconnect(self._close_code, self._close_reason)
        if self._accepted:
            self.state.access_log.websocket(
                self.scope.get("client"), "WSDISCONNECT", self.scope.get("path", ""), self._started
            )
        task = self._task
        if task is not None and not task.done():
            self.loop.call_later(self.config.application_close_timeout, self._cancel_app)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writers()
        if self._paused & _PAUSE_SEND:
            self._unpause(_PAUSE_SEND)

    # -- Connection (state.py) ----------------------------------------------------

    def shutdown(self) -> None:
        """Server shutdown: close 1001 when open; 503 when still handshaking."""
        if self._phase == _OPEN:
            self._start_close(1001, "server shutdown")
        elif self._phase == _CONNECTING:
            self._reject(503)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._cancel_app()

    # -- incoming ----------------------------------------------------------------

    def _early_data(self, data: bytes) -> None:
        # A client may pipeline frames behind its upgrade request; keep them
        # (bounded) until the application accepts.
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > self.limits.ws_early_data:
            self._pause(_PAUSE_EARLY)

    def _frames_received(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        events = conn.receive_data(data)
        closing = self._phase == _CLOSING
        # Dispatch on class identity (cheaper than isinstance on the hot
        # path); mypy cannot narrow on it, hence the ignores below.
        for event in events:
            cls = event.__class__
            if cls is TextMessage:
                if not closing:
                    self._deliver({"type": "websocket.receive", "text": event.data})  # type: ignore[union-attr]
            elif cls is BinaryMessage:
                if not closing:
                    self._deliver({"type": "websocket.receive", "bytes": event.data})  # type: ignore[union-attr]
            elif cls is Pong:
                if event.payload == self._ping_payload:  # type: ignore[union-attr]
                    self._ping_payload = None
                    self._cancel_timer("pong")
            elif cls is CloseReceived:
                self._finish(event.code, event.reason)  # type: ignore[union-attr]
            elif cls is ConnectionFailed:
                logger.debug("WebSocket protocol error: %s", event.reason)  # type: ignore[union-attr]
                # Let the application answer the messages that arrived before
                # the bad frame (it runs first: its wake-up is already
                # scheduled), then send the close; Autobahn checks this order.
                self.loop.call_soon(self._finish, event.code, event.reason)  # type: ignore[union-attr]
                return
        if conn.output and self._phase != _CLOSED:
            transport = self.transport
            assert transport is not None
            transport.write(conn.data_to_send())
            if transport.get_write_buffer_size() > self.limits.ws_max_send_buffer:
                self._pause(_PAUSE_SEND)

    def _finish(self, code: int, reason: str) -> None:
        """Close handshake done (or connection failed): flush and close TCP."""
        conn = self.conn
        transport = self.transport
        assert conn is not None and transport is not None
        if self._phase == _CLOSED:
            return
        if conn.output:
            transport.write(conn.data_to_send())
        self._phase = _CLOSED
        self._close_code = code
        self._close_reason = reason
        transport.close()
        self._disconnect(code, reason)

    def _deliver(self, message: Message) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        self._queue.append(message)
        self._queue_bytes += _size(message)
        if len(self._queue) >= self._queue_limit or self._queue_bytes >= self._queue_bytes_limit:
            self._pause(_PAUSE_QUEUE)

    def _disconnect(self, code: int, reason: str) -> None:
        if not self._disconnected:
            self._disconnected = True
            self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def receive(self) -> Message:
        """The ASGI ``receive`` callable."""
        queue = self._queue
        if queue:
            message = queue.popleft()
            self._queue_bytes -= _size(message)
            if (
                self._paused & _PAUSE_QUEUE
                and len(queue) <= self._queue_limit // 2
                and self._queue_bytes <= self._queue_bytes_limit // 2
            ):
                self._unpause(_PAUSE_QUEUE)
            return message
        if self._disconnected:
            # The app asks again after its disconnect: it gets the same answer.
            return {
                "type": "websocket.disconnect",
                "code": self._close_code,
                "reason": self._close_reason,
            }
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("receive() called while another receive() is waiting")
        waiter: asyncio.Future[Message] = self.loop.create_future()
        self._waiter = waiter
        return await waiter

    # -- outgoing ----------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """The ASGI ``send`` callable."""
        if self._phase == _OPEN and message["type"] == "websocket.send":
            text = message.get("text")
            conn = self.conn
            assert conn is not None and self.transport is not None
            if text.__class__ is str and message.get("bytes") is None:
                self.transport.write(conn.send_text(text))
            else:
                data = message.get("bytes")
                if text is not None or not isinstance(data, (bytes, bytearray, memoryview)):
                    self._misuse(
                        "websocket.send needs exactly one of 'text' (str) or 'bytes' (bytes)"
                    )
                    return
                self.transport.write(conn.send_bytes(bytes(data)))
            if self._write_paused:
                await self._wait_writable()
            return
        await self._send_other(message)

    async def _send_other(self, message: Message) -> None:
        kind = message.get("type")
        phase = self._phase
        if phase == _CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._reject(403)
            elif kind == "websocket.http.response.start":
                self._response_start(message)
            else:
                self._misuse(f"expected websocket.accept or websocket.close, got {kind!r}")
        elif phase == _RESPONSE:
            if kind != "websocket.http.response.body":
                self._misuse(f"expected websocket.http.response.body, got {kind!r}")
            body = message.get("body", b"")
            assert self.transport is not None
            if body:
                self.transport.write(body)
            if not message.get("more_body", False):
                self._phase = _CLOSED
                self.transport.close()
                self._disconnect(1006, "")
            elif self._write_paused:
                await self._wait_writable()
        elif phase == _OPEN:
            if kind == "websocket.close":
                code = message.get("code")
                if code is None:
                    code = 1000
                reason = message.get("reason") or ""
                if code.__class__ is not int or not is_valid_close_code(code):
                    self._misuse(
                        f"websocket.close 'code' {code!r} may not be sent"
                        " (use 1000, 3000-4999 or another code RFC 6455 allows on the wire)"
                    )
                if not isinstance(reason, str):
                    self._misuse("websocket.close 'reason' must be a str")
                self._start_close(code, reason)
            else:  # websocket.send on an open socket never gets here: send() took it
                self._misuse(f"{kind!r} is not valid on an accepted WebSocket")
        elif kind == "websocket.close":
            return  # closing twice, or after the peer left, is harmless
        elif kind in _AFTER_CLOSE:
            # Racing the peer's disconnect is normal, not an application bug.
            raise ClientDisconnected("the WebSocket is closed")
        else:
            self._misuse(f"{kind!r} is not a WebSocket message type")

    def _app_headers(self, raw: Any, what: str) -> list[tuple[bytes, bytes]]:
        """The app's ``headers``, checked like HTTP response headers (no CR/LF
        injection, token names); a bad one is an ASGI misuse (500)."""
        headers: list[tuple[bytes, bytes]] = []
        try:
            for name, value in raw or ():
                if isinstance(name, (bytearray, memoryview)):
                    name = bytes(name)
                if isinstance(value, (bytearray, memoryview)):
                    value = bytes(value)
                check_header(name, value)
                headers.append((name, value))
        except LocalProtocolError as exc:
            self._misuse(f"{what}: {exc}")
        except (TypeError, ValueError):
            self._misuse(f"{what} 'headers' must be an iterable of [name, value] byte strings")
        return headers

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        headers: list[tuple[bytes, bytes]] = []
        if self.config.server_name:
            headers.append((b"server", self.config.server_name.encode("latin-1")))
        for name, value in self._app_headers(message.get("headers"), "websocket.accept"):
            if name.lower() == b"sec-websocket-protocol":
                self._misuse("use the 'subprotocol' key, not a sec-websocket-protocol header")
            headers.append((name, value))
        if subprotocol is not None and not isinstance(subprotocol, str):
            self._misuse("websocket.accept 'subprotocol' must be a str or None")
        if subprotocol and subprotocol not in self.scope.get("subprotocols", ()):
            # RFC 6455 section 4.2.2: only one of the offered values may be chosen.
            self._misuse(
                f"websocket.accept 'subprotocol' {subprotocol!r} was not offered by the client"
                f" (offered: {self.scope.get('subprotocols')!r})"
            )
        transport = self.transport
        assert transport is not None
        # Everything that can fail happens before the 101 is written: a 500
        # after a 101 would be read as WebSocket frames.
        conn = WebSocketConnection(
            self.limits, self._deflate, self.config.websocket_deflate_min_size
        )
        response = build_accept_response(
            self._key,
            subprotocol=subprotocol,
            extensions=self._deflate_header,
            headers=headers,
        )
        transport.write(response)
        self.conn = conn
        self._phase = _OPEN
        self._accepted = True
        self._cancel_timer("connect")
        self.state.access_log.websocket(
            self.scope.get("client"), "WSCONNECT", self.scope.get("path", ""), self._started
        )
        if self.config.ping_interval:
            self._timer("ping", self.config.ping_interval, self._ping)
        if self.config.websocket_timeout:
            self._timer("lifetime", self.config.websocket_timeout, self._lifetime_over)
        if self._early:
            data = b"".join(self._early)
            self._early.clear()
            self._early_size = 0
            self._frames_received(data)
        if self._paused & _PAUSE_EARLY:
            self._unpause(_PAUSE_EARLY)

    def _response_start(self, message: Message) -> None:
        status = message.get("status")
        if status.__class__ is not int or not 200 <= status <= 599:
            # 1xx is not a final response (101 would even claim an upgrade).
            self._misuse(
                "websocket.http.response.start needs an integer 'status' in 200-599,"
                f" got {status!r}"
            )
            return
        headers = self._app_headers(message.get("headers"), "websocket.http.response.start")
        if self.config.server_name:
            headers.insert(0, (b"server", self.config.server_name.encode("latin-1")))
        assert self.transport is not None
        # No Content-Length unless the app gave one: the body ends with the connection.
        self.transport.write(build_http_response(status, headers, None))
        self._phase = _RESPONSE
        self._cancel_timer("connect")
        self.state.access_log.websocket(
            self.scope.get("client"), "WSREJECT", self.scope.get("path", ""), self._started
        )

    def _reject(self, status: int) -> None:
        """Refuse the handshake with a bodyless HTTP ``status`` and close."""
        transport = self.transport
        assert transport is not None
        if self._phase == _CONNECTING:
            headers = []
            if self.config.server_name:
                headers.append((b"server", self.config.server_name.encode("latin-1")))
            transport.write(build_http_response(status, headers, b""))
            self.state.access_log.websocket(
                self.scope.get("client"), "WSREJECT", self.scope.get("path", ""), self._started
            )
        self._phase = _CLOSED
        self._cancel_timer("connect")
        transport.close()
        self._disconnect(1006, "")

    def _start_close(self, code: int, reason: str) -> None:
        """Send our close frame; the peer's answer (or a timeout) ends the connection."""
        conn = self.conn
        assert conn is not None and self.transport is not None
        self.transport.write(conn.send_close(code, reason))
        self._phase = _CLOSING
        # The peer's close frame must be read whatever paused reading before
        # (data arriving now is discarded, so nothing accumulates).
        if self._paused:
            self._unpause(self._paused)
        self._close_code = code
        self._close_reason = reason
        self._cancel_timer("ping")
        self._cancel_timer("pong")
        self._timer("close", self.config.ping_timeout, self._close_timeout)

    async def _wait_writable(self) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_writers(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- reading back-pressure ----------------------------------------------------

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None and self._phase != _CLOSED:
            self.transport.pause_reading()
        self._paused |= reason

    def _unpause(self, reason: int) -> None:
        was = self._paused
        self._paused &= ~reason
        if was and not self._paused and self.transport is not None and self._phase != _CLOSED:
            self.transport.resume_reading()

    # -- timers ---------------------------------------------------------------------

    def _timer(self, name: str, delay: float, callback: Any) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        self._timers[name] = self.loop.call_later(delay, callback)

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _ping(self) -> None:
        self._timers.pop("ping", None)
        if self._phase != _OPEN:
            return
        assert self.conn is not None and self.transport is not None
        if self._ping_payload is None:
            self._ping_payload = os.urandom(4)
            self.transport.write(self.conn.send_ping(self._ping_payload))
            self._timer("pong", self.config.ping_timeout, self._pong_timeout)
        assert self.config.ping_interval is not None
        self._timer("ping", self.config.ping_interval, self._ping)

    def _pong_timeout(self) -> None:
        self._timers.pop("pong", None)
        if self._phase != _OPEN:
            return
        logger.info(
            "WebSocket %s: no pong within %ss, closing", self._peer(), self.config.ping_timeout
        )
        assert self.conn is not None and self.transport is not None
        # Best effort: the close frame leaves only if the socket buffer is
        # empty; a dead peer cannot drain, so the transport is aborted anyway.
        self.transport.write(self.conn.send_close(1011, "keepalive ping timeout"))
        self._close_code = 1011
        self._close_reason = "keepalive ping timeout"
        self._phase = _CLOSED
        self.transport.abort()

    def _connect_timeout(self) -> None:
        self._timers.pop("connect", None)
        if self._phase == _CONNECTING:
            logger.warning(
                "WebSocket %s: application did not accept or deny within %ss",
                self._peer(),
                self.config.websocket_connect_timeout,
            )
            self._reject(504)

    def _lifetime_over(self) -> None:
        self._timers.pop("lifetime", None)
        if self._phase == _OPEN:
            self._start_close(1000, "connection lifetime exceeded")

    def _close_timeout(self) -> None:
        self._timers.pop("close", None)
        if self.transport is not None and self._phase == _CLOSING:
            self._phase = _CLOSED
            self.transport.abort()

    def _peer(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "?"

    # -- the application --------------------------------------------------------------

    def _misuse(self, problem: str) -> None:
        """An ASGI spec violation by the app: fail the connection and raise into
        the app; ``_run_app`` logs it (with the traceback through the app)."""
        self._violation = problem
        self._app_failed()
        raise LocalProtocolError(problem, 500)

    def _app_failed(self) -> None:
        phase = self._phase
        if phase in (_CONNECTING, _RESPONSE):
            self._reject(500)  # in _RESPONSE the head is out: this cuts the body short
        elif phase == _OPEN:
            self._start_close(1011, "")

    async def _run_app(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except asyncio.CancelledError:
            if not self._cancelled_by_us:
                raise
        except BaseException as exc:
            # Also SystemExit / KeyboardInterrupt from the app: one connection
            # failing must not stop the server (CancelledError is handled above).
            if self._violation is not None and isinstance(exc, LocalProtocolError):
                self._log_violation(exc_info=True)
            else:
                logger.exception(
                    "Exception in ASGI application (WebSocket %s)", self.scope.get("path")
                )
            self._app_failed()
        else:
            if self._phase == _CONNECTING:
                logger.error(
                    "ASGI application returned without accepting or closing WebSocket %s",
                    self.scope.get("path"),
                )
                self._reject(500)
            elif self._phase == _RESPONSE:
                self._reject(500)
            elif self._phase == _OPEN:
                self._start_close(1000, "")
        finally:
            if self._violation is not None:  # the app caught the error itself
                self._log_violation(exc_info=False)

    def _log_violation(self, *, exc_info: bool) -> None:
        logger.error(
            "ASGI application error on WebSocket %s: %s",
            self.scope.get("path"),
            self._violation,
            exc_info=exc_info,
        )
        self._violation = None

    def _cancel_app(self) -> None:
        task = self._task
        if task is not None and not task.done():
            self._cancelled_by_us = True
            task.cancel()


def _size(message: Message) -> int:
    """What a queued message counts against ``ws_incoming_queue_bytes``."""
    text = message.get("text")
    if text is not None:
        return sys.getsizeof(text)  # O(1); a str may use 1, 2 or 4 bytes per character
    data = message.get("bytes")
    return len(data) if data is not None else 0
