"""bayou.worker.Worker and the runworker management command.

The worker runs in-process with the in-memory layer (a runworker subprocess could not
be reached from outside with that layer; the Redis layer issue adds a cross-process
test). A subprocess is used only to check that SIGTERM stops the worker gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from bayou.layers import InMemoryChannelLayer, channel_layers
from bayou.management.commands.runworker import Command
from bayou.worker import Worker
from tests.support.timeouts import scaled

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """An ASGI app recording every instance's scope and messages."""

    def __init__(self) -> None:
        self.instances: list[dict[str, Any]] = []
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.instances.append(scope)
        while True:
            message = await receive()
            self.messages.append((scope["channel"], message))
            self.arrived.set()


async def _until(predicate: Any, limit: float = 5.0) -> None:
    """Poll ``predicate`` (test helper: the worker has no hook to await)."""
    async with asyncio.timeout(scaled(limit)):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def test_requires_a_channel_layer() -> None:
    """Worker(..., channel_layer=None) raises ValueError("Channel layer is not valid")."""
    with pytest.raises(ValueError, match=r"^Channel layer is not valid$"):
        Worker(Recorder(), ["a"], None)


async def test_one_instance_per_channel_with_channel_scope() -> None:
    """Messages go to one application instance per channel, scope {"type": "channel", ...}."""
    layer = InMemoryChannelLayer()
    app = Recorder()
    worker = Worker(app, ["jobs", "mail"], layer)
    running = asyncio.ensure_future(worker.arun())
    for n in range(3):
        await layer.send("jobs", {"type": "job", "n": n})
    await layer.send("mail", {"type": "mail"})
    await _until(lambda: len(app.messages) == 4)
    worker.handle_exit()
    await asyncio.wait_for(running, scaled(5))
    assert sorted(scope["channel"] for scope in app.instances) == ["jobs", "mail"]
    assert all(scope == {"type": "channel", "channel": scope["channel"]} for scope in app.instances)
    assert [m["n"] for c, m in app.messages if c == "jobs"] == [0, 1, 2]
    assert worker.application_instances == {}


async def test_message_without_type_stops_the_worker() -> None:
    """A message with no "type" raises ValueError from arun() (the worker stops)."""
    layer = InMemoryChannelLayer()
    worker = Worker(Recorder(), ["jobs"], layer)
    running = asyncio.ensure_future(worker.arun())
    await layer.send("jobs", {"payload": 1})
    with pytest.raises(ValueError, match=r"^Worker received message with no type\.$"):
        await asyncio.wait_for(running, scaled(5))


async def test_graceful_stop_finishes_the_message_in_progress() -> None:
    """handle_exit() stops receiving, waits for the current message, then cancels instances."""
    layer = InMemoryChannelLayer()
    release = asyncio.Event()
    progress: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            while True:
                message = await receive()
                progress.append(f"start {message['n']}")
                await release.wait()
                progress.append(f"done {message['n']}")
        except asyncio.CancelledError:
            progress.append("cancelled")
            raise

    worker = Worker(app, ["jobs"], layer)
    running = asyncio.ensure_future(worker.arun())
    await layer.send("jobs", {"type": "job", "n": 1})
    await _until(lambda: progress == ["start 1"])
    worker.handle_exit(signal.SIGTERM)
    await asyncio.sleep(0)
    await layer.send("jobs", {"type": "job", "n": 2})
    await asyncio.sleep(0.01)
    assert not running.done()
    release.set()
    await asyncio.wait_for(running, scaled(5))
    assert progress == ["start 1", "done 1", "cancelled"]
    # The message sent after the stop request was left on the layer for the next worker.
    assert await asyncio.wait_for(layer.receive("jobs"), scaled(1)) == {"type": "job", "n": 2}


async def test_shutdown_timeout_cancels_stuck_instances() -> None:
    """An instance still busy after shutdown_timeout is cancelled and arun() returns."""
    layer = InMemoryChannelLayer()
    outcome: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    worker = Worker(app, ["jobs"], layer, shutdown_timeout=0.05)
    running = asyncio.ensure_future(worker.arun())
    await layer.send("jobs", {"type": "job"})
    await _until(lambda: bool(worker.application_instances))
    await asyncio.sleep(0.01)
    worker.handle_exit()
    await asyncio.wait_for(running, scaled(5))
    assert outcome == ["cancelled"]


async def test_second_stop_request_cancels_at_once() -> None:
    """A second handle_exit() cancels busy instances without waiting for the timeout."""
    layer = InMemoryChannelLayer()
    started = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        started.set()
        await asyncio.Event().wait()

    worker = Worker(app, ["jobs"], layer, shutdown_timeout=scaled(60))
    running = asyncio.ensure_future(worker.arun())
    await layer.send("jobs", {"type": "job"})
    await asyncio.wait_for(started.wait(), scaled(5))
    worker.handle_exit()
    await asyncio.sleep(0.01)
    assert not running.done()
    worker.handle_exit()
    await asyncio.wait_for(running, scaled(5))
    assert worker.force_exit


async def test_crashed_instance_is_logged_and_replaced(caplog: pytest.LogCaptureFixture) -> None:
    """An instance that raises is logged on bayou.worker; the next message starts a new one."""
    layer = InMemoryChannelLayer()
    calls: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        calls.append(message["n"])
        if message["n"] == 1:
            raise RuntimeError("boom")
        while True:
            await receive()

    worker = Worker(app, ["jobs"], layer)
    running = asyncio.ensure_future(worker.arun())
    with caplog.at_level(logging.ERROR, logger="bayou.worker"):
        await layer.send("jobs", {"type": "job", "n": 1})
        await _until(lambda: calls == [1] and not worker.application_instances)
        await layer.send("jobs", {"type": "job", "n": 2})
        await _until(lambda: calls == [1, 2])
    worker.handle_exit()
    await asyncio.wait_for(running, scaled(5))
    errors = [r for r in caplog.records if r.name == "bayou.worker"]
    assert len(errors) == 1
    assert "jobs" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


async def test_max_applications_evicts_least_recently_used() -> None:
    """With max_applications=1, a message for a second channel cancels the first instance."""
    layer = InMemoryChannelLayer()
    cancelled: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            while True:
                await receive()
        except asyncio.CancelledError:
            cancelled.append(scope["channel"])
            raise

    worker = Worker(app, ["a", "b"], layer, max_applications=1)
    running = asyncio.ensure_future(worker.arun())
    await layer.send("a", {"type": "x"})
    await _until(lambda: "a" in worker.application_instances)
    await layer.send("b", {"type": "x"})
    await _until(lambda: cancelled == ["a"])
    assert list(worker.application_instances) == ["b"]
    worker.handle_exit()
    await asyncio.wait_for(running, scaled(5))


async def test_application_send_is_refused() -> None:
    """A worker application calling send() gets NotImplementedError."""
    layer = InMemoryChannelLayer()
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "reply"})
        except NotImplementedError as exc:
            errors.append(exc)
        while True:
            await receive()

    worker = Worker(app, ["jobs"], layer)
    running = asyncio.ensure_future(worker.arun())
    await layer.send("jobs", {"type": "job"})
    await _until(lambda: bool(errors))
    worker.handle_exit()
    await asyncio.wait_for(running, scaled(5))


def test_sigterm_stops_a_running_worker_gracefully() -> None:
    """SIGTERM to a process in Worker.run() lets the current message finish, then exits 0."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from bayou.layers import InMemoryChannelLayer
        from bayou.worker import Worker

        async def app(scope, receive, send):
            while True:
                message = await receive()
                print("started", flush=True)
                await asyncio.sleep(0.3)
                print("finished", message["n"], flush=True)

        class SelfFeeding(Worker):
            async def handle(self):
                await self.channel_layer.send("jobs", {"type": "job", "n": 7})
                await super().handle()

        SelfFeeding(app, ["jobs"], InMemoryChannelLayer()).run()
        print("exited", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "started"
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=scaled(20))
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr
    assert stdout.split("\n")[:2] == ["finished 7", "exited"]


# -- runworker ----------------------------------------------------------------------------


class FakeWorker:
    """Stands in for Worker in command tests: records its arguments, runs instantly."""

    created: list[dict[str, Any]] = []

    def __init__(self, application: Any, channels: list[str], channel_layer: Any) -> None:
        self.kwargs = {"application": application, "channels": channels, "layer": channel_layer}

    def run(self) -> None:
        FakeWorker.created.append(self.kwargs)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI_APPLICATION used by the command tests."""


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    FakeWorker.created = []
    monkeypatch.setattr(Command, "worker_class", FakeWorker)
    return FakeWorker.created


def test_command_attributes() -> None:
    """runworker keeps Channels' class attributes (worker_class, leave_locale_alone)."""
    assert Command.worker_class is Worker
    assert Command.leave_locale_alone is True


@override_settings(ASGI_APPLICATION="tests.django.test_worker.application")
def test_runworker_builds_a_worker(
    fake_worker: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """runworker passes ASGI_APPLICATION, the channels and the default layer to the worker."""
    with caplog.at_level(logging.INFO, logger="django.channels.worker"):
        call_command("runworker", "jobs", "mail")
    assert len(fake_worker) == 1
    assert fake_worker[0]["application"] is application
    assert fake_worker[0]["channels"] == ["jobs", "mail"]
    assert fake_worker[0]["layer"] is channel_layers["default"]
    # On Channels' logger, so LOGGING configured for Channels keeps working.
    assert any(
        r.name == "django.channels.worker"
        and r.getMessage() == "Running worker for channels ['jobs', 'mail']"
        for r in caplog.records
    )


@override_settings(
    ASGI_APPLICATION="tests.django.test_worker.application",
    CHANNEL_LAYERS={
        "default": {"BACKEND": "bayou.layers.InMemoryChannelLayer"},
        "other": {"BACKEND": "bayou.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 3}},
    },
)
def test_runworker_layer_option(fake_worker: list[dict[str, Any]]) -> None:
    """--layer selects another CHANNEL_LAYERS alias."""
    call_command("runworker", "--layer", "other", "jobs")
    assert fake_worker[0]["layer"].capacity == 3


@override_settings(CHANNEL_LAYERS={})
def test_runworker_without_layers(fake_worker: list[dict[str, Any]]) -> None:
    """No CHANNEL_LAYERS -> CommandError("You do not have any CHANNEL_LAYERS configured.")."""
    with pytest.raises(CommandError, match=r"^You do not have any CHANNEL_LAYERS configured\.$"):
        call_command("runworker", "jobs")
    assert fake_worker == []


def test_runworker_unknown_layer(fake_worker: list[dict[str, Any]]) -> None:
    """An alias missing from CHANNEL_LAYERS gives the same CommandError."""
    with pytest.raises(CommandError, match="CHANNEL_LAYERS configured"):
        call_command("runworker", "--layer", "missing", "jobs")


def test_runworker_requires_channels(fake_worker: list[dict[str, Any]]) -> None:
    """At least one channel name is required."""
    with pytest.raises(CommandError, match="channels"):
        call_command("runworker")


@override_settings(ASGI_APPLICATION="tests.django.test_worker.recording_app")
def test_runworker_end_to_end_in_process() -> None:
    """The real command runs a Worker on the in-memory layer until it is stopped."""
    RecordingWorker.seen = []
    original = Command.worker_class
    Command.worker_class = RecordingWorker
    try:
        call_command("runworker", "e2e")
    finally:
        Command.worker_class = original
    assert RecordingWorker.seen == [{"type": "e2e.ping", "n": 1}]


class RecordingWorker(Worker):
    """Sends itself one message and stops once the application has handled it."""

    seen: list[dict[str, Any]] = []
    current: RecordingWorker | None = None

    async def handle(self) -> None:
        RecordingWorker.current = self
        await self.channel_layer.send("e2e", {"type": "e2e.ping", "n": 1})
        await super().handle()


async def recording_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Records each message and stops the worker that runs it."""
    while True:
        message = await receive()
        RecordingWorker.seen.append(message)
        assert RecordingWorker.current is not None
        RecordingWorker.current.handle_exit()
