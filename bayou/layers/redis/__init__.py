"""Redis channel layers (``channels_redis`` compatible).

``CHANNEL_LAYERS = {"default": {"BACKEND": "bayou.layers.redis.RedisChannelLayer",
"CONFIG": {"hosts": ["redis://127.0.0.1:6379"]}}}``. The modules mirror channels_redis:
``core`` (``RedisChannelLayer``), ``pubsub`` (``RedisPubSubChannelLayer``) and
``serializers``; ``sync`` holds the helper for publishing from sync code.
"""

from __future__ import annotations

from bayou.layers.redis.core import RedisChannelLayer, RedisUnavailable
from bayou.layers.redis.pubsub import RedisPubSubChannelLayer

__all__ = ["RedisChannelLayer", "RedisPubSubChannelLayer", "RedisUnavailable"]
