"""``BaseMiddleware``: the base for ASGI middleware that adds keys to the scope."""

from __future__ import annotations

from typing import Any

from bayou.utils import Receive, Scope, Send

__all__ = ["BaseMiddleware"]


class BaseMiddleware:
    """Wraps ``inner``; each call passes a shallow copy of the scope to it.

    One instance serves every connection, so keep per-connection state in
    the scope, never on ``self``. Subclasses override ``__call__``, change
    the copied scope and ``return await super().__call__(scope, receive, send)``.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        # Copy so that changes do not leak into an outer application's scope.
        scope = dict(scope)
        return await self.inner(scope, receive, send)
