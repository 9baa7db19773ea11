"""Database connection hygiene for consumers.

Django closes stale database connections around each HTTP request; long-lived
consumers have no request cycle, so bayou closes them at the points Channels
documents: before and after each sync handler runs in its thread
(``database_sync_to_async``), and in async consumers before each dispatched
event and after a disconnect (``aclose_old_connections``).

Making ``aclose_old_connections`` cheap: Channels hops to the sync thread on
every event. ``close_old_connections`` only ever acts on connections that are
open (``close_if_unusable_or_obsolete`` is a no-op when
``wrapper.connection is None``), so bayou remembers every database wrapper that
has opened a connection (Django's ``connection_created`` signal, sent for every
new connection in any thread) and skips the thread hop when none of them holds
an open connection. When any connection is open, the hop happens exactly as in
Channels. Wrappers are held weakly, so per-thread wrappers disappear with
their thread.
"""

from __future__ import annotations

import weakref
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections
from django.db.backends.signals import connection_created

__all__ = [
    "DatabaseSyncToAsync",
    "aclose_old_connections",
    "close_old_connections",
    "connections_may_be_open",
    "database_sync_to_async",
]

# Weak references to every wrapper that has opened a connection. A plain set,
# not a WeakSet, so the "nothing open" check on every event is a C-level truth
# test. No lock: single set operations are atomic, and a lock here could be
# re-entered by a weakref callback (garbage collection can run inside ``add``).
_wrappers: set[weakref.ref[Any]] = set()


def _remember_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # References to the same live object are equal, so reconnecting adds nothing.
    _wrappers.add(weakref.ref(connection, _wrappers.discard))


connection_created.connect(
    _remember_connection, weak=False, dispatch_uid="bayou.db.remember_connection"
)


def connections_may_be_open() -> bool:
    """True if any database wrapper, in any thread, currently holds an open connection.

    Only connections opened after ``bayou.db`` was imported are seen
    (``bayou.consumer`` imports it, so importing any consumer is enough).
    """
    if not _wrappers:
        return False
    for ref in _wrappers.copy():
        wrapper = ref()
        if wrapper is not None and wrapper.connection is not None:
            return True
    return False


def _close_old_connections() -> None:
    # Looked up at call time so tests can patch ``bayou.db.close_old_connections``.
    close_old_connections()


class DatabaseSyncToAsync(SyncToAsync[Any, Any]):
    """``SyncToAsync`` that closes old database connections before and after the call.

    Both closes run in the worker thread, where the thread's connections live.
    """

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            _close_old_connections()


database_sync_to_async = DatabaseSyncToAsync
"""Decorator/wrapper: run a sync callable (or method) in a thread with connection hygiene."""

_aclose = sync_to_async(_close_old_connections)


async def aclose_old_connections() -> None:
    """Close unusable or obsolete connections in the sync thread, as Django does per request.

    Returns at once, without a thread hop, when no connection is open.
    """
    if not connections_may_be_open():
        return
    await _aclose()
