"""bayou.db: connection hygiene around sync handlers and in async consumers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections
from django.db.backends.signals import connection_created
from django.test import override_settings

import bayou.db as db
from bayou.consumer import AsyncConsumer
from bayou.exceptions import StopConsumer
from tests.support.timeouts import scaled


class FakeWrapper:
    """Stands in for a Django database wrapper: ``connection`` is None when closed."""

    def __init__(self) -> None:
        self.connection: object | None = object()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replaces bayou.db.close_old_connections with a recorder of the calling thread ids,
    and starts with no known connections."""
    recorded: list[int] = []

    def record(**kwargs: Any) -> None:
        recorded.append(threading.get_ident())

    monkeypatch.setattr(db, "close_old_connections", record)
    monkeypatch.setattr(db, "_wrappers", set())
    return recorded


async def test_database_sync_to_async_closes_before_and_after(calls: list[int]) -> None:
    """The wrapped function runs in a worker thread between two close_old_connections calls."""
    ran_in: list[int] = []

    @db.database_sync_to_async
    def work(value: int) -> int:
        ran_in.append(threading.get_ident())
        assert len(calls) == 1
        return value * 2

    assert await work(21) == 42
    assert ran_in[0] != threading.get_ident()
    assert calls == [ran_in[0], ran_in[0]]


async def test_database_sync_to_async_closes_after_an_error(calls: list[int]) -> None:
    """close_old_connections runs after the call even when it raises."""

    @db.database_sync_to_async
    def broken() -> None:
        raise OSError("db down")

    with pytest.raises(OSError, match="db down"):
        await broken()
    assert len(calls) == 2


async def test_database_sync_to_async_on_methods(calls: list[int]) -> None:
    """database_sync_to_async decorates methods too."""

    class Repo:
        @db.database_sync_to_async
        def load(self, key: str) -> str:
            return key.upper()

    assert await Repo().load("k") == "K"
    assert len(calls) == 2


async def test_aclose_skips_thread_hop_without_open_connections(calls: list[int]) -> None:
    """With no open connection anywhere, aclose_old_connections does nothing."""
    await db.aclose_old_connections()
    assert calls == []
    closed = FakeWrapper()
    closed.connection = None
    connection_created.send(sender=FakeWrapper, connection=closed)
    await db.aclose_old_connections()
    assert calls == []


async def test_aclose_hops_when_a_connection_is_open(calls: list[int]) -> None:
    """A wrapper announced by connection_created with an open connection makes aclose
    call close_old_connections in the sync thread, as Channels does."""
    wrapper = FakeWrapper()
    connection_created.send(sender=FakeWrapper, connection=wrapper)
    assert db.connections_may_be_open()
    await db.aclose_old_connections()
    assert len(calls) == 1
    assert calls[0] != threading.get_ident()
    wrapper.connection = None
    assert not db.connections_may_be_open()


async def test_closed_wrappers_are_forgotten(calls: list[int]) -> None:
    """Wrappers are held weakly: a dropped wrapper no longer counts."""
    wrapper: FakeWrapper | None = FakeWrapper()
    connection_created.send(sender=FakeWrapper, connection=wrapper)
    assert db.connections_may_be_open()
    wrapper = None
    assert not db.connections_may_be_open()


def test_real_connections_are_tracked() -> None:
    """Opening a real Django connection is noticed through connection_created."""
    wrapper = connections["default"]
    wrapper.ensure_connection()
    assert any(ref() is wrapper for ref in db._wrappers)
    assert db.connections_may_be_open()


@override_settings(CHANNEL_LAYERS={})
async def test_async_consumer_closes_before_each_event(calls: list[int]) -> None:
    """An async consumer runs close_old_connections before each handler when a
    connection is open, and never when none is."""
    wrapper = FakeWrapper()
    seen: list[int] = []
    ticked = asyncio.Event()

    class Consumer(AsyncConsumer):
        async def tick(self, message: dict[str, Any]) -> None:
            seen.append(len(calls))
            ticked.set()

        async def stop(self, message: dict[str, Any]) -> None:
            raise StopConsumer()

    communicator = ApplicationCommunicator(Consumer.as_asgi(), {"type": "x"})
    await communicator.send_input({"type": "tick"})
    await asyncio.wait_for(ticked.wait(), scaled(2))
    connection_created.send(sender=FakeWrapper, connection=wrapper)
    await communicator.send_input({"type": "tick"})
    await communicator.send_input({"type": "stop"})
    await communicator.wait(scaled(2))
    assert seen == [0, 1]
