"""``ApplicationCommunicator``: drive any ASGI application from a test.

It is asgiref's communicator (so ``isinstance`` checks against asgiref's class
keep working) with two changes that matter in Django tests:

* ``bayou.db.close_old_connections`` is a no-op while the test is inside
  :meth:`~ApplicationCommunicator.send_input` or
  :meth:`~ApplicationCommunicator.receive_output`, as in Channels: a test's
  database connection (and its transaction) must survive the consumer's
  ``database_sync_to_async`` calls.
* :meth:`~ApplicationCommunicator.receive_output` waits for the output *or*
  for the application to finish, so an exception raised inside the
  application surfaces in the test at once, with its own traceback, instead
  of a ``TimeoutError`` after the full timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from asgiref.testing import ApplicationCommunicator as _AsgirefCommunicator

__all__ = ["ApplicationCommunicator"]

Message = dict[str, Any]


def _no_op(**kwargs: Any) -> None:
    """Stands in for ``close_old_connections`` while a communicator call runs."""


# Several communicators may be awaited concurrently (asyncio.gather in a test);
# the patch is reference-counted so the last one out restores the original.
_patch_depth = 0
_saved_close_old_connections: Any = None


@contextlib.contextmanager
def _database_cleanup_disabled() -> Iterator[None]:
    global _patch_depth, _saved_close_old_connections
    try:
        # Imported here: importing bayou.testing must stay cheap, and a test of
        # a plain ASGI app needs no database module at all.
        import bayou.db as db_module
    except ImportError:  # pragma: no cover - bayou.db is part of the package
        yield
        return
    if not hasattr(db_module, "close_old_connections"):
        yield
        return
    if _patch_depth == 0:
        _saved_close_old_connections = db_module.close_old_connections
        db_module.close_old_connections = _no_op
    _patch_depth += 1
    try:
        yield
    finally:
        _patch_depth -= 1
        if _patch_depth == 0:
            db_module.close_old_connections = _saved_close_old_connections
            _saved_close_old_connections = None


# The ``timeout`` parameters (noqa ASYNC109) are the asgiref/Channels API that
# existing tests call; they are not a substitute for asyncio.timeout().
class ApplicationCommunicator(_AsgirefCommunicator):
    """Run one ASGI application instance and exchange messages with it.

    ``ApplicationCommunicator(application, scope)``; then ``send_input(message)``,
    ``receive_output(timeout=1)``, ``receive_nothing(timeout=0.1, interval=0.01)``
    and ``wait(timeout=1)``. Once the application has finished, every call
    re-raises the exception it finished with.
    """

    application: Any
    scope: dict[str, Any]
    # asgiref's __del__ reads _future; a subclass whose __init__ raises before
    # calling ours (argument validation) must not trigger an error there.
    _future: Any = None

    async def send_input(self, message: Message) -> None:
        """Queue ``message`` for the application's ``receive()``.

        Raises the application's exception if it has already finished with one.
        """
        with _database_cleanup_disabled():
            await super().send_input(message)  # type: ignore[no-untyped-call]

    async def wait(self, timeout: float = 1) -> None:  # noqa: ASYNC109
        """Wait for the application to return; re-raise its exception.

        After ``timeout`` seconds the application is cancelled and
        ``TimeoutError`` raised.
        """
        with _database_cleanup_disabled():
            await super().wait(timeout)  # type: ignore[no-untyped-call]

    async def receive_output(self, timeout: float = 1) -> Message:  # noqa: ASYNC109
        """Return the next message the application sent.

        Raises the application's own exception as soon as it crashes, and
        ``TimeoutError`` when nothing arrives within ``timeout`` seconds (the
        application is then cancelled, as in asgiref) or when the application
        returned without sending anything more.
        """
        with _database_cleanup_disabled():
            return await self._receive_output(timeout)

    async def _receive_output(self, timeout: float) -> Message:  # noqa: ASYNC109
        future: asyncio.Task[Any] = self.future
        if future.done():
            future.result()
            return self._output_after_exit()
        getter = asyncio.ensure_future(self.output_queue.get())
        try:
            await asyncio.wait({getter, future}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            if not getter.done():
                # Cancelling a pending Queue.get() never loses an item: the
                # item is only taken when the getter resumes.
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        if getter.done() and not getter.cancelled():
            message: Message = getter.result()
            return message
        if future.done():
            future.result()
            return self._output_after_exit()
        # Timed out: stop the application like asgiref does, surfacing any
        # error it raises while being cancelled.
        future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await future
        raise TimeoutError(f"No output from the application within {timeout} seconds")

    def _output_after_exit(self) -> Message:
        # The application returned normally: whatever it sent before is still
        # readable; after that nothing can ever arrive, so do not wait.
        try:
            message: Message = self.output_queue.get_nowait()
        except asyncio.QueueEmpty:
            raise TimeoutError("The application finished without sending more output") from None
        return message
