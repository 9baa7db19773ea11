"""The channel layer conformance suite, run against InMemoryChannelLayer.

Twice: once with a fake clock (expiry tests run instantly) and once on the real clock,
the way any other layer runs it.
"""

from __future__ import annotations

from typing import Any

from bayou.layers import BaseChannelLayer, InMemoryChannelLayer
from bayou.testing.layers import ChannelLayerConformance


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestInMemoryConformance(ChannelLayerConformance):
    """InMemoryChannelLayer with an injected clock."""

    clock: FakeClock

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        self.clock = FakeClock()
        # Keep the back-pressure wait short: the suite's full-member test waits it out.
        config.setdefault("group_send_timeout", 0.05)
        return InMemoryChannelLayer(clock=self.clock, **config)

    async def advance_time(self, layer: BaseChannelLayer, seconds: float) -> None:
        self.clock.now += seconds


class TestInMemoryConformanceRealClock(ChannelLayerConformance):
    """InMemoryChannelLayer with its defaults and the real clock."""

    test_expiry = 0.2

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        return InMemoryChannelLayer(**config)
