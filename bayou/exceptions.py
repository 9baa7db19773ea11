"""Exceptions raised and caught by consumers and channel layers.

Same names and hierarchy as ``channels.exceptions``, so ``except`` clauses keep
working after changing the import prefix.
"""

from __future__ import annotations

__all__ = [
    "AcceptConnection",
    "ChannelFull",
    "DenyConnection",
    "InvalidChannelLayerError",
    "MessageTooLarge",
    "RequestAborted",
    "RequestTimeout",
    "StopConsumer",
]


class RequestAborted(Exception):
    """The client went away while the request body was still being read."""


class RequestTimeout(RequestAborted):
    """Reading the request body took longer than allowed."""


class InvalidChannelLayerError(ValueError):
    """The channel layer is missing, misconfigured or lacks a needed feature (e.g. groups)."""


class AcceptConnection(Exception):
    """Raise in a WebSocket consumer's ``connect()`` to accept the connection."""


class DenyConnection(Exception):
    """Raise in a WebSocket consumer's ``connect()`` to refuse the connection (HTTP 403)."""


class ChannelFull(Exception):
    """A channel layer ``send`` found the target channel at capacity."""


class MessageTooLarge(Exception):
    """A message is larger than the channel layer can carry."""


class StopConsumer(Exception):
    """Raised inside a consumer to end its application instance cleanly.

    The consumer's ``__call__`` catches it and returns normally.
    """
