"""The issue's delivery requirement, end to end through real consumers.

10 publishers x 500 messages, back to back, into a group of 100 consumers on the
in-memory layer at default settings: every consumer handles all 5000 messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bayou.consumer import AsyncConsumer
from bayou.layers import InMemoryChannelLayer, channel_layers
from tests.support.timeouts import scaled


class CountingConsumer(AsyncConsumer):
    """Counts chat.message events per consumer, in arrival order."""

    registry: list[CountingConsumer] = []
    remaining = 0
    done = asyncio.Event()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, int]] = []
        CountingConsumer.registry.append(self)

    async def chat_message(self, message: dict[str, Any]) -> None:
        self.seen.append((message["publisher"], message["n"]))
        CountingConsumer.remaining -= 1
        if CountingConsumer.remaining == 0:
            CountingConsumer.done.set()
        if len(self.seen) % 50 == 0:
            await asyncio.sleep(0)  # a handler that yields now and then


@pytest.mark.slow
async def test_burst_into_group_of_consumers_loses_nothing() -> None:
    """All 500,000 deliveries arrive, in order per publisher, and stats() shows no drop."""
    layer = InMemoryChannelLayer()
    previous = channel_layers.set("default", layer)
    CountingConsumer.registry = []
    CountingConsumer.remaining = 100 * 10 * 500
    CountingConsumer.done = asyncio.Event()
    idle = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await idle.wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("no ASGI output expected")

    app = CountingConsumer.as_asgi()
    tasks = [asyncio.ensure_future(app({"type": "channel"}, receive, send)) for _ in range(100)]
    try:
        async with asyncio.timeout(scaled(10)):
            # The consumer has no "ready" hook: wait until each one has its channel name.
            while len(CountingConsumer.registry) < 100 or not all(  # noqa: ASYNC110
                getattr(c, "channel_name", None) for c in CountingConsumer.registry
            ):
                await asyncio.sleep(0.01)
        for consumer in CountingConsumer.registry:
            await layer.group_add("room", consumer.channel_name)

        async def publish(publisher: int) -> None:
            for n in range(500):
                await layer.group_send(
                    "room", {"type": "chat.message", "publisher": publisher, "n": n}
                )

        await asyncio.wait_for(asyncio.gather(*(publish(p) for p in range(10))), scaled(120))
        await asyncio.wait_for(CountingConsumer.done.wait(), scaled(60))
        assert layer.stats().dropped == 0
        for consumer in CountingConsumer.registry:
            assert len(consumer.seen) == 5000
            for publisher in range(10):
                assert [n for p, n in consumer.seen if p == publisher] == list(range(500))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        channel_layers.set("default", previous)
