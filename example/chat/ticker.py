"""Simulated coin prices, published to one channel-layer group per coin.

The legacy Channels 1 demo fetched prices from an exchange with a Celery task;
here a background asyncio task makes them up (a bounded random walk), so the
demo needs no network. The task runs only while at least one ticker page is
open: the first subscriber starts it, the last one stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any

from bayou.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

COINS: dict[str, tuple[str, float]] = {
    "btc": ("Bitcoin", 64_000.0),
    "ltc": ("Litecoin", 85.0),
}
"""Coin code -> (display name, starting price in USD)."""


_PROCESS = f"{os.getpid()}"


def group_name(coin: str) -> str:
    """The group whose members receive ``coin``'s prices.

    Each server process simulates its own feed, so the group is per process: on a
    shared Redis layer (two demo servers) two feeds must not publish into one group.
    The chat rooms are the cross-process demo.
    """
    return f"ticker_{coin}_{_PROCESS}"


class PriceFeed:
    """Publishes ``{"type": "price.update", "coin", "name", "price", "at"}`` to
    every coin's group each ``interval`` seconds while it has subscribers."""

    def __init__(self, interval: float | None = None, seed: int | None = None) -> None:
        self.interval = interval
        self.prices = {code: start for code, (_, start) in COINS.items()}
        self._random = random.Random(seed)
        self._subscribers = 0
        self._task: asyncio.Task[None] | None = None

    def snapshot(self, coin: str) -> dict[str, Any]:
        """The latest price of ``coin`` as sent to browsers."""
        return {
            "coin": coin,
            "name": COINS[coin][0],
            "price": round(self.prices[coin], 2),
            "at": time.time(),
        }

    def subscribe(self) -> None:
        """Count one more viewer; start publishing if it is the first."""
        self._subscribers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="price feed")

    def unsubscribe(self) -> None:
        """Count one viewer less; stop publishing when none is left."""
        self._subscribers = max(0, self._subscribers - 1)
        if self._subscribers == 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    def _step(self) -> None:
        for coin, price in self.prices.items():
            # A +-0.5% move, kept within 50%..200% of the starting price.
            start = COINS[coin][1]
            moved = price * (1 + self._random.uniform(-0.005, 0.005))
            self.prices[coin] = min(max(moved, start * 0.5), start * 2)

    async def _run(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        interval = self.interval if self.interval is not None else settings.TICKER_INTERVAL
        while True:
            self._step()
            for coin in COINS:
                try:
                    await layer.group_send(
                        group_name(coin), {"type": "price.update", **self.snapshot(coin)}
                    )
                except Exception:
                    # One failed publication must not stop the feed for everyone.
                    logger.exception("Could not publish the %s price", coin)
            await asyncio.sleep(interval)


feed = PriceFeed()
"""The process-wide feed shared by every ticker connection."""
