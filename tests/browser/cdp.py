"""A tiny, synchronous Chrome DevTools Protocol client for the browser tests.

Just enough to drive a headless Chromium the way a person would: open pages
in isolated browser contexts (separate cookie jars), navigate, type with the
keyboard, click with the mouse, and read the DOM. Playwright and puppeteer
download their own browsers, which is not possible everywhere the suite runs,
so this drives the distribution's ``chromium`` directly.

One browser process, one WebSocket to it, one thread: every command is sent
and its reply awaited on the calling thread; events that arrive meanwhile are
handed to the page they belong to (flattened sessions, so each message carries
its ``sessionId``). Waiting is always "poll the DOM until a JavaScript
expression is truthy, or fail at a deadline" — never a bare sleep.

Usage::

    with Chromium.launch(find_chromium()) as browser, browser.context() as ctx:
        page = ctx.new_page()
        page.navigate("http://127.0.0.1:8000/echo/")
        page.wait_for("document.getElementById('status').textContent === 'connected'")
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.timeouts import scaled

__all__ = [
    "CHROMIUM_FLAGS",
    "BrowserContext",
    "CDPError",
    "Chromium",
    "JavaScriptError",
    "Page",
    "find_chromium",
]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests often run as root or in containers without user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # small /dev/shm in containers crashes renderers
    "--mute-audio",
    "--remote-debugging-port=0",  # the chosen port is printed on stderr
)
"""Flags every test browser gets; no network beyond what the pages load."""

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Largest DevTools message accepted (a DOM read can exceed websockets' 1 MiB default)."""

MAX_STDERR_LINES = 200
"""Chromium's last stderr lines kept for error messages."""

MAX_ERRORS_PER_PAGE = 100
"""JavaScript errors remembered per page; later ones are dropped."""

POLL_INTERVAL = 0.05
"""Seconds between two evaluations of a ``wait_for`` condition."""

_DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    """The Chromium to use: ``$BAYOU_CHROMIUM``, else ``chromium`` or
    ``chromium-browser`` on PATH; None when there is none.

    A configured ``BAYOU_CHROMIUM`` is returned even when it does not exist, so
    that a typo fails the launch loudly instead of skipping the tests."""
    configured = os.environ.get("BAYOU_CHROMIUM")
    if configured:
        return shutil.which(configured) or configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CDPError(Exception):
    """A DevTools command failed (the protocol's ``error`` reply)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('message')} ({error.get('code')})")
        self.method = method
        self.code = error.get("code")


class JavaScriptError(Exception):
    """``Page.evaluate`` threw in the page; the message is the page's description."""


class _Connection:
    """The browser-level WebSocket: numbered commands, events routed by session."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pages: dict[str, Page] = {}

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and return its ``result``; raises CDPError on an error reply."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout if timeout is not None else scaled(15))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"No reply to {method} within the deadline")
            reply = self._receive(remaining)
            if reply is not None and reply.get("id") == message_id:
                if "error" in reply:
                    raise CDPError(method, reply["error"])
                result: dict[str, Any] = reply.get("result", {})
                return result

    def pump(self, duration: float) -> None:
        """Handle the events that arrive within ``duration`` seconds."""
        deadline = time.monotonic() + duration
        while (remaining := deadline - time.monotonic()) > 0:
            self._receive(remaining)

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        """One message (events are dispatched here and returned too); None on timeout."""
        try:
            raw = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        message: dict[str, Any] = json.loads(raw)
        if "method" in message:
            page = self._pages.get(message.get("sessionId", ""))
            if page is not None:
                page._on_event(message["method"], message.get("params", {}))
        return message

    def register(self, page: Page) -> None:
        self._pages[page.session_id] = page

    def unregister(self, page: Page) -> None:
        self._pages.pop(page.session_id, None)


class Page:
    """One tab, attached with its own DevTools session."""

    def __init__(self, connection: _Connection, target_id: str, session_id: str) -> None:
        self._connection = connection
        self.target_id = target_id
        self.session_id = session_id
        self._loads = 0
        self.errors: list[str] = []
        """Uncaught exceptions and ``console.error`` calls seen in the page, in order."""

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A raw DevTools command on this page's session."""
        return self._connection.call(method, params, self.session_id)

    # --- reading ------------------------------------------------------------------

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises awaited);
        raises JavaScriptError when it throws."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        details = result.get("exceptionDetails")
        if details is not None:
            exception = details.get("exception", {})
            raise JavaScriptError(exception.get("description") or details.get("text", "?"))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll until ``expression`` is truthy in the page and return its value.

        A throw or a navigation in progress counts as "not yet". On the deadline,
        TimeoutError names the expression, its last value and the page's text.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else scaled(10))
        last: Any = None
        while True:
            try:
                last = self.evaluate(expression)
                if last:
                    return last
            except (JavaScriptError, CDPError) as exc:
                # CDPError: the execution context went away mid-navigation.
                last = exc
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Still falsy: {expression}\nlast value: {last!r}\n"
                    f"url: {self._safe('location.href')}\n"
                    f"page text:\n{self._safe('document.body && document.body.innerText')}\n"
                    f"page errors: {self.errors}"
                )
            self._connection.pump(POLL_INTERVAL)

    def text(self, selector: str) -> str:
        """``textContent`` (or ``value`` for form fields) of the first match; "" when absent."""
        return str(
            self.evaluate(
                f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                " if (e === null) return '';"
                " const field = e instanceof HTMLInputElement || e instanceof HTMLTextAreaElement"
                " || e instanceof HTMLSelectElement;"
                " return field ? e.value : e.textContent; })()"
            )
        )

    def _safe(self, expression: str) -> Any:
        try:
            return self.evaluate(expression)
        except Exception as exc:  # diagnostics only: never mask the timeout
            return f"<{exc}>"

    # --- acting -------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        """Load ``url`` (following redirects) and wait for the page's load event."""
        with self.expect_load():
            result = self.call("Page.navigate", {"url": url})
            if result.get("errorText"):
                raise CDPError("Page.navigate", {"message": f"{url}: {result['errorText']}"})

    @contextlib.contextmanager
    def expect_load(self, timeout: float | None = None) -> Iterator[None]:
        """Wait, after the block, for a new document to finish loading in the tab
        (the block navigates: a link clicked, a form submitted, ``navigate``)."""
        loads = self._loads
        yield
        deadline = time.monotonic() + (timeout if timeout is not None else scaled(10))
        while self._loads == loads:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"No page load; still at {self._safe('location.href')}, "
                    f"page errors: {self.errors}"
                )
            self._connection.pump(min(remaining, POLL_INTERVAL))

    def click(self, selector: str) -> None:
        """A real left click (mouse pressed and released) in the middle of the element."""
        box = self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (e === null) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return r.width > 0 && r.height > 0 ? {x: r.x + r.width / 2, y: r.y + r.height / 2}"
            " : null; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def type(self, selector: str, text: str) -> None:
        """Focus the element and insert ``text`` as typed text (``input`` events, as
        from a keyboard or an IME; no per-character keydown/keyup)."""
        self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (e === null) return false; e.focus(); return document.activeElement === e; })()"
        )
        self.call("Input.insertText", {"text": text})

    def press_enter(self) -> None:
        """Press and release Enter on the focused element (keydown, keypress, keyup)."""
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **key})
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", **key})

    # --- events -------------------------------------------------------------------

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loads += 1
            return
        if len(self.errors) >= MAX_ERRORS_PER_PAGE:
            return
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.errors.append(exception.get("description") or details.get("text", "?"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = params.get("args", [])
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in args))


class BrowserContext:
    """An isolated profile inside the browser (its own cookies and storage)."""

    def __init__(self, connection: _Connection, context_id: str) -> None:
        self._connection = connection
        self.context_id = context_id
        self.pages: list[Page] = []

    def new_page(self) -> Page:
        """A blank tab in this context, with Runtime and Page events enabled."""
        created = self._connection.call(
            "Target.createTarget", {"url": "about:blank", "browserContextId": self.context_id}
        )
        target_id = created["targetId"]
        attached = self._connection.call(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        page = Page(self._connection, target_id, attached["sessionId"])
        self._connection.register(page)
        self.pages.append(page)
        page.call("Page.enable")
        page.call("Runtime.enable")
        # Several tabs at once: without this only one would have keyboard focus.
        page.call("Emulation.setFocusEmulationEnabled", {"enabled": True})
        return page

    def close(self) -> None:
        """Close the context's tabs and forget its cookies."""
        for page in self.pages:
            self._connection.unregister(page)
        self.pages.clear()
        self._connection.call("Target.disposeBrowserContext", {"browserContextId": self.context_id})


class Chromium:
    """A headless Chromium process driven over its DevTools WebSocket."""

    def __init__(
        self, process: subprocess.Popen[str], connection: _Connection, stderr: deque[str]
    ) -> None:
        self.process = process
        self._connection = connection
        self._stderr = stderr

    @classmethod
    @contextlib.contextmanager
    def launch(cls, executable: str, *extra_flags: str) -> Iterator[Chromium]:
        """Start ``executable`` with CHROMIUM_FLAGS and a throwaway profile; stop it
        (and every process it started) on exit."""
        with tempfile.TemporaryDirectory(prefix="bayou-chromium-") as profile:
            process = subprocess.Popen(
                [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra_flags],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group, so teardown reaches helpers
            )
            stderr: deque[str] = deque(maxlen=MAX_STDERR_LINES)
            lines: queue.Queue[str | None] = queue.Queue()
            reader = threading.Thread(
                target=_read_lines, args=(process.stderr, stderr, lines), daemon=True
            )
            reader.start()
            try:
                # No Origin header (Chromium refuses DevTools clients with an unexpected
                # one), no compression (nothing to gain on loopback).
                with connect(
                    _devtools_url(lines, stderr),
                    max_size=MAX_MESSAGE_SIZE,
                    compression=None,
                    open_timeout=scaled(10),
                ) as ws:
                    connection = _Connection(ws)
                    try:
                        yield cls(process, connection, stderr)
                    finally:
                        with contextlib.suppress(Exception):
                            connection.call("Browser.close", timeout=scaled(5))
            finally:
                _stop(process)
                reader.join(scaled(5))
                if process.stderr is not None:
                    process.stderr.close()

    @contextlib.contextmanager
    def context(self) -> Iterator[BrowserContext]:
        """A fresh browser context for the duration of the block."""
        created = self._connection.call("Target.createBrowserContext")
        context = BrowserContext(self._connection, created["browserContextId"])
        try:
            yield context
        finally:
            context.close()

    @property
    def stderr(self) -> str:
        """Chromium's last stderr lines (for failure messages)."""
        return "\n".join(self._stderr)


def _read_lines(stream: Any, tail: deque[str], lines: queue.Queue[str | None]) -> None:
    """Keep the tail of stderr; hand lines to ``_devtools_url`` until its line came
    (nobody reads the queue afterwards, so it stops growing there)."""
    handing = True
    for line in stream:
        tail.append(line.rstrip("\n"))
        if handing:
            lines.put(line)
            handing = _DEVTOOLS_LINE.search(line) is None
    if handing:
        lines.put(None)


def _devtools_url(lines: queue.Queue[str | None], tail: deque[str]) -> str:
    deadline = time.monotonic() + scaled(30)
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            raise RuntimeError("Chromium exited before DevTools was ready:\n" + "\n".join(tail))
        match = _DEVTOOLS_LINE.search(line)
        if match:
            return match.group(1)
    raise TimeoutError("Chromium did not print its DevTools URL:\n" + "\n".join(tail))


def _stop(process: subprocess.Popen[str]) -> None:
    """Reap the browser; if it does not exit, signal its process group (renderers,
    zygote). Signals go only while the leader is unreaped, so the group id is ours."""
    for sig, grace in ((None, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            process.wait(scaled(grace))
        except subprocess.TimeoutExpired:
            continue
        break
