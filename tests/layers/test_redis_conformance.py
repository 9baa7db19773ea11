"""The channel layer conformance suite against a real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bayou.layers import BaseChannelLayer
from bayou.layers.redis import RedisChannelLayer
from bayou.testing.layers import ChannelLayerConformance


class TestRedisChannelLayerConformance(ChannelLayerConformance):
    """RedisChannelLayer on the session's Redis server, a fresh key prefix per layer."""

    test_expiry = 1.0

    @pytest.fixture(autouse=True)
    def _redis(self, redis_url: str) -> None:
        self.redis_url = redis_url

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        config.setdefault("prefix", f"conf{uuid.uuid4().hex[:8]}")
        return RedisChannelLayer(hosts=[self.redis_url], **config)
