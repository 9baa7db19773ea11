"""bayou.testing.ApplicationCommunicator: asgiref's communicator with bayou's fixes."""

from __future__ import annotations

import asyncio
from typing import Any

import django.db
import pytest
from asgiref.testing import ApplicationCommunicator as AsgirefCommunicator

import bayou.db
from bayou.testing import ApplicationCommunicator
from tests.support.timeouts import scaled

SCOPE = {"type": "http", "method": "GET", "path": "/", "headers": []}
# Generous: these are hang guards, never expected to expire.
GUARD = scaled(30)


class Boom(Exception):
    pass


async def crashing_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    raise Boom("the application failed")


def test_is_an_asgiref_communicator() -> None:
    """Code that checks for asgiref's class keeps accepting bayou's."""
    communicator = ApplicationCommunicator(crashing_app, SCOPE)
    assert isinstance(communicator, AsgirefCommunicator)


async def test_messages_come_out_in_order() -> None:
    """Everything the application sends is received, in order."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        for n in range(3):
            await send({"type": "out", "n": n, "got": message["type"]})

    communicator = ApplicationCommunicator(app, SCOPE)
    await communicator.send_input({"type": "in"})
    received = [await communicator.receive_output() for _ in range(3)]
    assert received == [{"type": "out", "n": n, "got": "in"} for n in range(3)]
    await communicator.wait()


async def test_application_exception_surfaces_instead_of_timeout() -> None:
    """A crash inside the application is raised by receive_output with the app's
    traceback, without waiting for the (here, very long) timeout to expire."""
    communicator = ApplicationCommunicator(crashing_app, SCOPE)
    await communicator.send_input({"type": "in"})
    with pytest.raises(Boom, match="the application failed") as info:
        await asyncio.wait_for(communicator.receive_output(timeout=3600), GUARD)
    assert any(entry.name == "crashing_app" for entry in info.traceback)


async def test_exception_after_output_comes_after_that_output() -> None:
    """Output sent before a crash is still delivered; the next receive raises."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "first"})
        raise Boom("after first")

    communicator = ApplicationCommunicator(app, SCOPE)
    assert (await communicator.receive_output())["type"] == "first"
    with pytest.raises(Boom, match="after first"):
        await asyncio.wait_for(communicator.receive_output(timeout=3600), GUARD)


async def test_send_input_after_crash_reraises() -> None:
    """send_input re-raises the exception of an application that already crashed."""
    communicator = ApplicationCommunicator(crashing_app, SCOPE)
    await communicator.send_input({"type": "in"})
    with pytest.raises(Boom):
        await communicator.wait()
    with pytest.raises(Boom):
        await communicator.send_input({"type": "again"})


async def test_timeout_cancels_the_application() -> None:
    """With no output in time, TimeoutError is raised and the application is cancelled."""
    cancelled = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    communicator = ApplicationCommunicator(app, SCOPE)
    with pytest.raises(TimeoutError):
        await communicator.receive_output(timeout=0.05)
    assert cancelled.is_set()
    assert communicator.future.cancelled()


async def test_returned_application_gives_timeout_error() -> None:
    """After the application returned and its output was read, receive_output
    raises TimeoutError straight away: nothing can arrive any more."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "only"})

    communicator = ApplicationCommunicator(app, SCOPE)
    assert (await communicator.receive_output())["type"] == "only"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(communicator.receive_output(timeout=3600), GUARD)


async def test_receive_nothing() -> None:
    """receive_nothing is True when the application is quiet and False once it sent."""

    sent = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "reply"})
        sent.set()
        await asyncio.Event().wait()

    communicator = ApplicationCommunicator(app, SCOPE)
    assert await communicator.receive_nothing() is True
    await communicator.send_input({"type": "go"})
    await asyncio.wait_for(sent.wait(), GUARD)
    assert await communicator.receive_nothing() is False
    communicator.stop(exceptions=False)


async def test_close_old_connections_is_patched_during_calls() -> None:
    """While the test awaits send_input/receive_output, bayou.db.close_old_connections
    is a no-op (so a consumer cannot close the test's database connection); it
    is restored afterwards."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        seen.append(bayou.db.close_old_connections)
        await send({"type": "done"})

    communicator = ApplicationCommunicator(app, SCOPE)
    await communicator.send_input({"type": "go"})
    await communicator.receive_output()
    assert seen and seen[0] is not django.db.close_old_connections
    seen[0]()  # the stand-in is callable and does nothing
    assert bayou.db.close_old_connections is django.db.close_old_connections


async def test_concurrent_communicators_restore_the_patch() -> None:
    """Overlapping calls of several communicators leave close_old_connections restored."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        await asyncio.sleep(message["delay"])
        await send({"type": "done"})

    first = ApplicationCommunicator(app, SCOPE)
    second = ApplicationCommunicator(app, SCOPE)
    await first.send_input({"type": "go", "delay": 0.02})
    await second.send_input({"type": "go", "delay": 0})
    await asyncio.gather(first.receive_output(), second.receive_output())
    assert bayou.db.close_old_connections is django.db.close_old_connections


async def test_wait_reraises_the_application_exception() -> None:
    """wait() returns when the application returns and raises what it raised."""
    communicator = ApplicationCommunicator(crashing_app, SCOPE)
    await communicator.send_input({"type": "in"})
    with pytest.raises(Boom):
        await communicator.wait(timeout=GUARD)
