"""Test helpers: communicators (no server) and a live-server test case (real server).

``channels.testing`` becomes ``bayou.testing`` with the same names.
``LiveServerTestCase`` is bayou's own name for ``ChannelsLiveServerTestCase``.

Importing this package is cheap: the live-server module (which imports
``django.test`` and multiprocessing) loads on first use of its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bayou.testing.application import ApplicationCommunicator
from bayou.testing.http import HttpCommunicator
from bayou.testing.websocket import WebsocketCommunicator

if TYPE_CHECKING:
    from bayou.testing.live import ChannelsLiveServerTestCase, LiveServerTestCase

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "HttpCommunicator",
    "LiveServerTestCase",
    "WebsocketCommunicator",
]

_LAZY = {"ChannelsLiveServerTestCase", "LiveServerTestCase"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from bayou.testing import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
