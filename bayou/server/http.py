"""The HTTP/1.1 connection: asyncio I/O around ``bayou.protocol.http11``, running
one ASGI ``http`` cycle per request.

Requests on a connection are answered strictly in order, one application
call at a time; up to ``limits.max_pipelined_requests`` further requests are
parsed (and their bodies buffered, up to ``limits.http_read_buffer``) while
one is being answered, then reading pauses. A WebSocket upgrade is handed to
``bayou.server.websocket`` once every earlier response is complete.

Behaviour and error statuses are documented in docs/reference/http.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any, cast
from urllib.parse import unquote

from bayou.protocol.errors import LocalProtocolError, RemoteProtocolError
from bayou.protocol.http11._state import WriterState
from bayou.protocol.http11.connection import ServerConnection
from bayou.protocol.http11.events import NEED_DATA, PAUSED, Data, EndOfMessage, Request
from bayou.server.config import Config
from bayou.server.proxy_headers import ProxyHeaders
from bayou.server.state import ServerState

__all__ = ["ClientDisconnected", "HttpProtocol"]

logger = logging.getLogger("bayou.server.http")

_SEND_BODY = WriterState.SEND_BODY
_IDLE = WriterState.IDLE
_METHODS = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
}
_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (ASGI HTTP spec 2.4)."""


def _proxy_headers(config: Config) -> ProxyHeaders:
    # One resolved object per Config (not per connection): parsing the allow
    # list is not free.
    cached: ProxyHeaders | None = getattr(config, "_bayou_proxy_headers", None)
    if cached is None:
        cached = ProxyHeaders(
            config.proxy_headers,
            config.forwarded_allow_ips,
            config.proxy_headers_host,
            config.proxy_headers_port,
        )
        object.__setattr__(config, "_bayou_proxy_headers", cached)
    return cached


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(raw_path, query_string)`` for origin-, absolute- and asterisk-form targets."""
    if target[:1] != b"/" and target != b"*":
        # absolute-form (RFC 9112 section 3.2.2): keep only the path and query.
        rest = target.split(b"://", 1)[-1]
        slash = rest.find(b"/")
        question = rest.find(b"?")
        if slash < 0 or (0 <= question < slash):
            target = b"/" + rest[question:] if question >= 0 else b"/"
        else:
            target = rest[slash:]
    raw_path, _, query = target.partition(b"?")
    return raw_path, query


def _decode_path(raw_path: bytes) -> str:
    text = raw_path.decode("latin-1")
    if 37 in raw_path:  # "%" (an int needle is much faster than b"%")
        return unquote(text, encoding="utf-8", errors="replace")
    return text


class _Cycle:
    """One request/response exchange: the ASGI ``receive``/``send`` pair."""

    # __slots__, every field set in __init__: the flags are read many times
    # per request, and on CPython 3.11 a slot read is several times faster
    # than falling back to a class-level default (measured: worth more than
    # the longer __init__).
    __slots__ = (
        "body",
        "body_complete",
        "body_size",
        "continue_sent",
        "disconnected",
        "final_delivered",
        "proto",
        "request",
        "resp_size",
        "response_complete",
        "response_started",
        "scope",
        "started",
        "status",
        "task",
        "timeout_handle",
        "waiter",
    )

    def __init__(self, proto: HttpProtocol, request: Request, scope: dict[str, Any]) -> None:
        self.proto = proto
        self.request = request
        self.scope = scope
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_complete = False
        self.final_delivered = False
        self.continue_sent = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.status = 0
        self.resp_size = 0
        self.started = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.timeout_handle: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- ASGI receive

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected or self.response_complete:
                return {"type": "http.disconnect"}
            if self.body or (self.body_complete and not self.final_delivered):
                body = self.body
                if not body:
                    data = b""  # the usual bodyless request: nothing to reset
                else:
                    data = body[0] if len(body) == 1 else b"".join(body)
                    self.body = []
                    self.body_size = 0
                more = not self.body_complete
                if not more:
                    self.final_delivered = True
                if self.proto.read_paused:
                    self.proto._resume_reading()
                return {"type": "http.request", "body": data, "more_body": more}
            if self.final_delivered and self.proto.client_eof:
                # Whole body read and the client sent EOF: an app waiting for
                # more (a long poll) learns the client is gone; its response
                # may still be sent to a half-closed client (eof_received).
                return {"type": "http.disconnect"}
            if not self.continue_sent and self.request.expect_continue:
                self.continue_sent = True
                self.proto._send_continue(self)
            waiter = self.waiter
            if waiter is None:
                waiter = self.waiter = self.proto.loop.create_future()
            # Shared by concurrent receive() calls (e.g. a disconnect listener
            # next to a body reader); shielded so cancelling one caller does
            # not cancel the wake-up of the others.
            await asyncio.shield(waiter)

    # -- ASGI send

    async def send(self, message: dict[str, Any]) -> None:
        try:
            mtype = message["type"]
        except (TypeError, KeyError):
            raise LocalProtocolError(
                f"ASGI message must be a dict with a 'type' key, got {message!r}", 500
            ) from None
        proto = self.proto
        if not self.response_started:
            if mtype != "http.response.start":
                raise LocalProtocolError(f"expected 'http.response.start' before {mtype!r}", 500)
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            status = message.get("status")
            trailers = bool(message.get("trailers", False))
            proto.conn.start_response(
                self.request,
                status,  # type: ignore[arg-type]  # validated by start_response
                message.get("headers", ()),
                trailers=trailers,
                close=proto.shutting_down or (proto.reading is self and not self.body_complete),
            )
            self.response_started = True
            self.status = status  # type: ignore[assignment]
            if self.timeout_handle is not None:
                self.timeout_handle.cancel()
                self.timeout_handle = None
            return
        if mtype == "http.response.body":
            if self.response_complete:
                return  # ASGI: further messages are ignored
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if isinstance(body, (bytearray, memoryview)):
                    body = bytes(body)
                else:
                    raise LocalProtocolError(
                        f"http.response.body 'body' must be bytes, got {type(body).__name__}",
                        500,
                    )
            more = bool(message.get("more_body", False))
            data = proto.conn.send_body(body, more)
            self.resp_size += len(body)
            if data:
                proto.transport.write(data)  # type: ignore[union-attr]
            if proto.conn.writer_state is not _SEND_BODY:  # IDLE or MUST_CLOSE: done
                proto._response_complete(self)
            elif proto.write_paused:
                await proto._drain()
            return
        if mtype == "http.response.trailers":
            if self.response_complete:
                return
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            if message.get("more_trailers", False):
                raise LocalProtocolError("more_trailers is not supported", 500)
            data = proto.conn.send_trailers(message.get("headers", ()))
            if data:
                proto.transport.write(data)  # type: ignore[union-attr]
            proto._response_complete(self)
            return
        if mtype == "http.response.start":
            raise LocalProtocolError("http.response.start sent twice", 500)
        raise LocalProtocolError(f"unknown ASGI message type {mtype!r} for an HTTP response", 500)


class HttpProtocol(asyncio.Protocol):
    """One client connection speaking HTTP/1.1 (see module docstring)."""

    def __init__(self, config: Config, state: ServerState, app: Any) -> None:
        self.config = config
        self.state = state
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.limits = config.limits
        name = config.server_name
        self.conn = ServerConnection(config.limits, name.encode("latin-1") if name else None)
        self.proxy = _proxy_headers(config)
        self.transport: asyncio.Transport | None = None
        self.cycle: _Cycle | None = None
        self.pipeline: deque[_Cycle] = deque()
        self.reading: _Cycle | None = None  # the cycle whose body is still arriving
        self.tasks: set[asyncio.Task[None]] = set()
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        # One lazily re-armed timer per connection: setting or clearing a
        # deadline per request only stores a float; the handle re-arms itself
        # when it fires early (call_later/cancel per request is measurable).
        self.timer: asyncio.TimerHandle | None = None
        self.timer_when = 0.0
        self.deadline: float | None = None
        self.timer_is_head = False
        self.pending_error: RemoteProtocolError | None = None
        self.client_eof = False
        self.upgrade_pending = False
        self.closing = False
        self.shutting_down = False
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        self.trusted = False
        self.root_path = config.root_path
        self.log_enabled = state.access_log.enabled

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.state.connections.add(self)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if isinstance(peer, (tuple, list)) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        if isinstance(sock, (tuple, list)) and len(sock) >= 2:
            self.server = (str(sock[0]), int(sock[1]))
        elif isinstance(sock, str) and sock:
            self.server = (sock, None)
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self.trusted = self.proxy.enabled and self.proxy.is_trusted(
            self.client[0] if self.client else None
        )
        if self.shutting_down or self.state.shutting_down:
            transport.close()
            return
        self._set_timer(self.config.request_head_timeout, head=True)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        self._handle_events()
        if self.cycle is None and not self.timer_is_head and conn.buffered and not self.closing:
            # Part of a request head is waiting: from now on it must complete
            # within request_head_timeout, however slowly it trickles in.
            self._set_timer(self.config.request_head_timeout, head=True)

    def eof_received(self) -> bool | None:
        # The client shut down its sending side (or closed). With complete
        # requests still being answered, keep the transport open to finish
        # their responses (RFC 9112 section 9.6), then close
        # (_response_complete sees client_eof). Otherwise (idle, or in the
        # middle of a request body) returning None lets the transport close
        # and connection_lost tells waiting apps http.disconnect.
        if self.closing or (self.cycle is None and not self.pipeline) or self.reading is not None:
            return None
        self.client_eof = True
        if self.cycle is not None:
            self.cycle.wake()  # a receive() waiting after the body gets http.disconnect
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.state.connections.discard(self)
        self._stop_timer()
        cycles = list(self.pipeline)
        self.pipeline.clear()
        if self.cycle is not None:
            cycles.append(self.cycle)
        for cycle in cycles:
            cycle.disconnected = True
            if cycle.timeout_handle is not None:
                cycle.timeout_handle.cancel()
            cycle.wake()
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.drain_waiter = None
        timeout = self.config.application_close_timeout
        for task in list(self.tasks):
            if not task.done():
                task.add_done_callback(self._task_done)
                self.loop.call_later(timeout, task.cancel)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self.cycle is None and self.pipeline and not self.closing:
            # A pipelined request waited for the client to read (_response_complete).
            self._start_cycle(self.pipeline.popleft())
            self._resume_reading()

    # ------------------------------------------------------------ Connection protocol

    def shutdown(self) -> None:
        """Graceful: close now when idle, else after the in-flight response."""
        self.shutting_down = True
        self.pipeline.clear()
        if self.cycle is None:
            self._close()

    def abort(self) -> None:
        """Close the transport at once and cancel the application."""
        for task in list(self.tasks):
            task.add_done_callback(self._task_done)
            task.cancel()
        if self.transport is not None:
            self.closing = True
            self.transport.abort()

    # ------------------------------------------------------------ reading

    def _handle_events(self) -> None:
        conn = self.conn
        while not self.read_paused and not self.closing:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                self._on_protocol_error(exc)
                return
            kind = type(event)
            if kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
                if len(self.pipeline) >= self.limits.max_pipelined_requests:
                    self._pause_reading()
            elif kind is EndOfMessage:
                reading = self.reading
                assert reading is not None
                reading.body_complete = True
                self.reading = None
                if reading.waiter is not None:
                    reading.wake()
            elif event is NEED_DATA or event is PAUSED:
                return
            elif kind is Data:
                reading = self.reading
                assert reading is not None
                data = event.data  # type: ignore[union-attr]
                reading.body.append(data)
                reading.body_size += len(data)
                reading.wake()
                if reading.body_size > self.limits.http_read_buffer:
                    self._pause_reading()
            else:  # ConnectionClosed: the client will send nothing more
                self.client_eof = True
                if self.cycle is None:
                    self._close()
                return

    def _pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.read_paused or self.closing or self.pending_error is not None:
            return
        reading = self.reading
        if reading is not None and reading.body_size > self.limits.http_read_buffer:
            return
        if len(self.pipeline) >= self.limits.max_pipelined_requests:
            return
        if self.upgrade_pending:
            return  # what follows the upgrade request belongs to the WebSocket
        self.read_paused = False
        if self.transport is not None:
            self.transport.resume_reading()
        self._handle_events()

    def _on_request(self, request: Request) -> None:
        self.deadline = None  # _cancel_timer(), inlined
        self.timer_is_head = False
        self.state.total_requests += 1
        websocket = request.upgrade == b"websocket"
        # A WebSocket cycle gets its websocket scope now: _handoff reuses it.
        cycle = _Cycle(self, request, self._scope(request, websocket))
        if self.log_enabled:
            cycle.started = time.monotonic()
        if websocket:
            self.upgrade_pending = True
            self._pause_reading()  # what follows belongs to the WebSocket
        else:
            self.reading = cycle
        if self.cycle is None and not self.write_paused and not self.pipeline:
            self._start_cycle(cycle)
        else:
            # Behind another request, or the client is not reading our
            # responses (resume_writing starts it).
            self.pipeline.append(cycle)

    def _on_protocol_error(self, exc: RemoteProtocolError) -> None:
        logger.debug("Bad request from %s: %s", self.client, exc)
        self._pause_reading()
        reading = self.reading
        self.reading = None
        if reading is not None and reading is not self.cycle:
            # Its body is broken: it will not be answered; earlier ones will.
            with contextlib.suppress(ValueError):
                self.pipeline.remove(reading)
        if reading is not None and reading is self.cycle:
            reading.disconnected = True
            reading.wake()
            if not self.conn.head_written and not reading.response_complete:
                self.conn.reset_response()
                self._write_error(exc)
            self._close()
            return
        self.pending_error = exc
        if self.cycle is None:
            self._write_error(exc)
            self._close()

    def _write_error(self, exc: RemoteProtocolError) -> None:
        if self.transport is None or self.closing:
            return
        try:
            data = self.conn.send_error(exc.status_hint, str(exc))
        except LocalProtocolError:
            return
        self.transport.write(data)
        log = self.state.access_log
        if log.enabled:
            log.http(self.client, "-", "-", "1.1", exc.status_hint, 0, time.monotonic())

    # ------------------------------------------------------------ cycles

    def _scope(self, request: Request, websocket: bool = False) -> dict[str, Any]:
        target = request.target
        # Int needles: ``b"?" in target`` is several times slower on CPython
        # (the bytes argument is first tried as an integer).
        if target[:1] == b"/" and 63 not in target and 37 not in target:  # "?", "%"
            raw_path, query, path = target, b"", target.decode("latin-1")
        else:
            raw_path, query = _split_target(target)
            path = _decode_path(raw_path)
        root_path = self.root_path
        if root_path and path != root_path and not path.startswith(root_path + "/"):
            # ASGI: PATH_INFO is ``path`` minus ``root_path``, so ``path`` carries the
            # mount point even when a proxy stripped it (as uvicorn does; daphne does
            # not, which breaks Channels' URLRouter behind --root-path).
            path = root_path + path
        client = self.client
        scheme = self.scheme
        if self.trusted:
            client, scheme = self.proxy.resolve(request.headers, client, scheme)
        if websocket:
            return {
                "type": "websocket",
                "asgi": {"version": "3.0", "spec_version": "2.5"},
                "http_version": request.http_version,
                "scheme": "wss" if scheme == "https" else "ws",
                "path": path,
                "raw_path": raw_path,
                "query_string": query,
                "root_path": root_path,
                "headers": request.headers,
                "client": client,
                "server": self.server,
                "state": dict(self.state.lifespan_state),
                "extensions": {"websocket.http.response": {}},
            }
        method = request.method
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.5"},
            "http_version": request.http_version,
            "method": _METHODS.get(method) or method.decode("ascii"),
            "scheme": scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": root_path,
            "headers": request.headers,
            "client": client,
            "server": self.server,
            "state": dict(self.state.lifespan_state),
            "extensions": {"http.response.trailers": {}},
        }

    def _start_cycle(self, cycle: _Cycle) -> None:
        self.cycle = cycle
        if cycle.request.upgrade == b"websocket":
            self._handoff(cycle)
            return
        task = self.loop.create_task(self._run_asgi(cycle))
        cycle.task = task
        # Removed from both sets by _run_asgi's finally (a done callback would
        # cost a loop callback per request); connection_lost adds callbacks
        # for the rare task cancelled before it ever ran.
        self.tasks.add(task)
        self.state.tasks.add(task)
        timeout = self.config.http_timeout
        if timeout is not None:
            cycle.timeout_handle = self.loop.call_later(timeout, self._on_http_timeout, cycle)

    async def _run_asgi(self, cycle: _Cycle) -> None:
        try:
            result = await self.app(cycle.scope, cycle.receive, cycle.send)
        except ClientDisconnected:
            if not cycle.disconnected:
                logger.error("ClientDisconnected raised by the application", exc_info=True)
            self._app_failed(cycle)
        except LocalProtocolError as exc:
            # exc_info: the traceback runs through the app's faulty send() call.
            logger.error("ASGI protocol violation by the application: %s", exc, exc_info=True)
            self._app_failed(cycle)
        except asyncio.CancelledError:
            self._app_failed(cycle)
            raise
        except BaseException:
            # Also SystemExit / KeyboardInterrupt raised by the app: one
            # request failing must not stop the server (CancelledError is
            # handled above).
            logger.exception("Exception in ASGI application")
            self._app_failed(cycle)
        else:
            if result is not None:
                logger.error("ASGI callable returned a non-None value: %r", result)
            if not cycle.response_complete and not cycle.disconnected:
                if not cycle.response_started:
                    logger.error("ASGI application returned without starting a response")
                else:
                    logger.error("ASGI application returned without completing the response")
                self._app_failed(cycle)
        finally:
            if cycle.timeout_handle is not None:
                cycle.timeout_handle.cancel()
                cycle.timeout_handle = None
            task = cycle.task
            self.tasks.discard(task)
            self.state.tasks.discard(task)

    def _app_failed(self, cycle: _Cycle) -> None:
        """Answer 500 if nothing was written yet, else close: the response is broken."""
        if cycle.response_complete or cycle.disconnected or self.transport is None:
            return
        conn = self.conn
        if not conn.head_written:
            conn.reset_response()
            try:
                data = conn.send_response(
                    cycle.request, 500, _ERROR_HEADERS, _ERROR_BODY, close=True
                )
            except LocalProtocolError:  # the writer is broken (e.g. a body overran its length)
                self._close()
                return
            cycle.response_started = True
            cycle.status = 500
            cycle.resp_size = len(_ERROR_BODY)
            self.transport.write(data)
            self._response_complete(cycle)
        else:
            conn.abandon()
            cycle.response_complete = True
            cycle.wake()
            self._close()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.state.tasks.discard(task)

    def _on_http_timeout(self, cycle: _Cycle) -> None:
        cycle.timeout_handle = None
        if cycle.response_started or cycle.disconnected or self.transport is None:
            return
        logger.warning("Application did not start a response within http_timeout; sending 503")
        self._write_error(RemoteProtocolError("the application timed out", 503))
        self._close()

    def _send_continue(self, cycle: _Cycle) -> None:
        if self.transport is not None and not self.closing and cycle is self.cycle:
            data = self.conn.send_continue(cycle.request)
            if data:
                self.transport.write(data)

    def _response_complete(self, cycle: _Cycle) -> None:
        cycle.response_complete = True
        if cycle.waiter is not None:
            cycle.wake()
        if self.log_enabled:
            req = cycle.request
            self.state.access_log.http(
                cycle.scope["client"],
                cycle.scope["method"],
                req.target.decode("latin-1"),
                req.http_version,
                cycle.status,
                cycle.resp_size,
                cycle.started,
            )
        if cycle is not self.cycle:
            return
        self.cycle = None
        if (
            self.conn.writer_state is not _IDLE
            or self.shutting_down
            or (self.reading is cycle and not cycle.body_complete)
        ):
            self._close()
            return
        if self.pipeline:
            if self.write_paused:
                # The client is not reading our responses: answering the next
                # pipelined request now would buffer its whole response.
                # resume_writing continues.
                return
            self._start_cycle(self.pipeline.popleft())
            self._resume_reading()
            return
        if self.pending_error is not None:
            self._write_error(self.pending_error)
            self._close()
            return
        if self.client_eof:
            self._close()
            return
        if self.conn.buffered:
            self._set_timer(self.config.request_head_timeout, head=True)
        else:
            self._set_timer(self.config.keep_alive_timeout, head=False)
        if self.read_paused:
            self._resume_reading()

    async def _drain(self) -> None:
        if self.transport is None or self.closing:
            return
        waiter = self.drain_waiter
        if waiter is None:
            waiter = self.drain_waiter = self.loop.create_future()
        await waiter

    # ------------------------------------------------------------ WebSocket handoff

    def _handoff(self, cycle: _Cycle) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        try:
            from bayou.server.websocket import WebSocketProtocol
        except ImportError:
            logger.exception("WebSocket support is unavailable")
            self._write_error(RemoteProtocolError("WebSocket is not supported", 501))
            self._close()
            return
        self._stop_timer()
        scope = cycle.scope
        leftover = self.conn.trailing_data
        self.state.connections.discard(self)
        self.cycle = None
        self.transport = None
        self.closing = True  # this object is done with the connection
        ws = WebSocketProtocol(self.config, self.state, self.app)
        ws.start(transport, cycle.request, scope, leftover)

    # ------------------------------------------------------------ helpers

    def _close(self) -> None:
        if self.transport is not None and not self.closing:
            self.closing = True
            self._stop_timer()
            self.transport.close()

    def _set_timer(self, delay: float | None, *, head: bool) -> None:
        if delay is None or delay <= 0:
            self._cancel_timer()
            return
        deadline = self.loop.time() + delay
        self.deadline = deadline
        self.timer_is_head = head
        timer = self.timer
        if timer is None or self.timer_when > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._on_timer)
            self.timer_when = deadline

    def _cancel_timer(self) -> None:
        self.deadline = None
        self.timer_is_head = False

    def _stop_timer(self) -> None:
        self._cancel_timer()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None or self.cycle is not None or self.closing:
            return
        if self.loop.time() < deadline:
            self.timer = self.loop.call_at(deadline, self._on_timer)
            self.timer_when = deadline
            return
        if self.conn.buffered and self.timer_is_head:
            self._write_error(RemoteProtocolError("request head not received in time", 408))
        self._close()
