"""ASGI lifespan 2.0: the Lifespan driver alone, then through a real server."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bayou.server.lifespan import Lifespan, LifespanFailure
from bayou.server.server import EXIT_STARTUP_FAILED, StartupError
from tests import apps
from tests.support.servers import fetch, serve
from tests.support.timeouts import scaled


class Recorder:
    """A lifespan app that records what it received and answers as told."""

    def __init__(self, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.received: list[str] = []
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        while True:
            message = await receive()
            self.received.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "pool"
                await send({"type": f"lifespan.startup.{self.startup}", "message": "no db"})
                if self.startup == "failed":
                    return
            else:
                await send({"type": f"lifespan.shutdown.{self.shutdown}", "message": "stuck"})
                return


async def test_startup_and_shutdown_messages_in_order() -> None:
    """startup() sends lifespan.startup and returns on complete; shutdown() sends
    lifespan.shutdown and returns on complete; the scope is lifespan 2.0 with state."""
    app = Recorder()
    state: dict[str, Any] = {}
    lifespan = Lifespan(app, "auto", state)
    await asyncio.wait_for(lifespan.startup(), scaled(5))
    assert app.received == ["lifespan.startup"]
    assert state == {"db": "pool"}
    assert app.scope["type"] == "lifespan"
    assert app.scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
    assert app.scope["state"] is state
    await asyncio.wait_for(lifespan.shutdown(), scaled(5))
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]


async def test_startup_failed_raises_with_the_message() -> None:
    """lifespan.startup.failed makes startup() raise LifespanFailure carrying the message."""
    lifespan = Lifespan(Recorder(startup="failed"), "auto", {})
    with pytest.raises(LifespanFailure, match="no db"):
        await asyncio.wait_for(lifespan.startup(), scaled(5))


async def test_auto_mode_tolerates_an_app_raising_on_lifespan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In "auto" mode an app that raises on the lifespan scope (Django's ASGIHandler)
    is served without lifespan events: startup() returns, shutdown() is a no-op."""
    lifespan = Lifespan(apps.no_lifespan_app, "auto", {})
    with caplog.at_level(logging.INFO, logger="bayou.server"):
        await asyncio.wait_for(lifespan.startup(), scaled(5))
        await asyncio.wait_for(lifespan.shutdown(), scaled(5))
    assert not lifespan.supported
    assert "lifespan' protocol appears unsupported" in caplog.text


async def test_on_mode_requires_lifespan_support() -> None:
    """In "on" mode an app that raises on the lifespan scope is a startup failure."""
    lifespan = Lifespan(apps.no_lifespan_app, "on", {})
    with pytest.raises(LifespanFailure, match="ValueError"):
        await asyncio.wait_for(lifespan.startup(), scaled(5))


async def test_off_mode_never_calls_the_app() -> None:
    """In "off" mode the application never sees a lifespan scope."""
    app = Recorder()
    lifespan = Lifespan(app, "off", {})
    await lifespan.startup()
    await lifespan.shutdown()
    assert app.received == []


async def test_app_returning_without_answer_in_auto_mode_is_unsupported() -> None:
    """An app that returns at once on the lifespan scope counts as not supporting it."""

    async def returns(scope: Any, receive: Any, send: Any) -> None:
        return None

    lifespan = Lifespan(returns, "auto", {})
    await asyncio.wait_for(lifespan.startup(), scaled(5))
    assert not lifespan.supported


async def test_shutdown_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """lifespan.shutdown.failed is logged with its message; shutdown() still returns."""
    lifespan = Lifespan(Recorder(shutdown="failed"), "auto", {})
    await asyncio.wait_for(lifespan.startup(), scaled(5))
    with caplog.at_level(logging.ERROR, logger="bayou.server"):
        await asyncio.wait_for(lifespan.shutdown(), scaled(5))
    assert "Lifespan shutdown failed: stuck" in caplog.text


async def test_unknown_message_type_raises_in_the_app() -> None:
    """send() of an unknown type raises into the application (which then counts as
    not supporting lifespan in auto mode)."""
    seen: list[BaseException] = []

    async def bad(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "lifespan.startup.bogus"})
        except RuntimeError as exc:
            seen.append(exc)
            raise

    lifespan = Lifespan(bad, "auto", {})
    await asyncio.wait_for(lifespan.startup(), scaled(5))
    assert len(seen) == 1
    assert not lifespan.supported


async def test_server_shares_lifespan_state_into_scopes() -> None:
    """State written during startup appears (as a copy) in HTTP and WebSocket scopes."""
    async with serve(apps.app) as srv:
        assert srv.server.state.lifespan_state == {"started": True}
        response = await fetch(srv.url, "/scope")
        assert response.status == 200
        assert json.loads(response.body)["state"] == {"started": True}
        async with connect(srv.ws_url + "/scope", proxy=None) as ws:
            scope = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
        assert scope["type"] == "websocket"
        assert scope["state"] == {"started": True}


async def test_server_startup_failure_raises_exit_code_3() -> None:
    """lifespan.startup.failed aborts Server.startup() with StartupError(exit_code=3)
    carrying the application's message, and nothing keeps listening."""
    with pytest.raises(StartupError, match="database unreachable") as info:
        async with serve(apps.failing_startup_app):
            pass  # pragma: no cover - must not be reached
    assert info.value.exit_code == EXIT_STARTUP_FAILED


async def test_server_runs_lifespan_shutdown_after_connections_close() -> None:
    """Server shutdown ends with lifespan.shutdown (after startup, exactly once each)."""
    app = Recorder()

    async def routed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await app(scope, receive, send)
        else:
            await apps.app(scope, receive, send)

    async with serve(routed) as srv:
        assert (await fetch(srv.url, "/")).status == 200
        assert app.received == ["lifespan.startup"]
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]


async def test_shutdown_times_out_on_an_app_that_never_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An app that never answers lifespan.shutdown is cancelled after
    shutdown_timeout (logged); shutdown() returns instead of hanging."""
    cancelled = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lifespan = Lifespan(stuck, "auto", {}, shutdown_timeout=0.05)
    await asyncio.wait_for(lifespan.startup(), scaled(5))
    with caplog.at_level(logging.ERROR, logger="bayou.server"):
        await asyncio.wait_for(lifespan.shutdown(), scaled(5))
    assert cancelled.is_set()
    assert "did not complete" in caplog.text


async def test_server_shutdown_is_bounded_by_lifespan_shutdown_timeout() -> None:
    """Server shutdown finishes even when the app never answers lifespan.shutdown."""

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await apps.app(scope, receive, send)
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.Event().wait()

    async def run() -> None:
        async with serve(stuck, lifespan_shutdown_timeout=0.05) as srv:
            assert (await fetch(srv.url, "/")).status == 200

    await asyncio.wait_for(run(), scaled(10))


@pytest.mark.parametrize("mode", ["auto", "on"])
@pytest.mark.parametrize("exc", [SystemExit(2), KeyboardInterrupt()], ids=repr)
async def test_system_exit_in_startup_fails_startup(
    mode: Any, exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    """sys.exit() / KeyboardInterrupt in lifespan startup code is logged and
    fails startup (even in "auto" mode): it is not "lifespan unsupported"."""

    async def exits(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise exc

    lifespan = Lifespan(exits, mode, {})
    with caplog.at_level(logging.ERROR, logger="bayou.server"), pytest.raises(LifespanFailure):
        await asyncio.wait_for(lifespan.startup(), scaled(5))
    assert "Exception in 'lifespan' protocol" in caplog.text
