"""The Redis fixture hands out a real, reachable server."""

from __future__ import annotations

import redis

from tests.support.redis import RedisServer


def test_redis_url_answers_ping(redis_url: str) -> None:
    """The URL from the fixture points at a live Redis that answers PING and stores data."""
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        client.set("bayou:test:key", b"value")
        assert client.get("bayou:test:key") == b"value"
        client.delete("bayou:test:key")
    finally:
        client.close()


def test_private_server_restarts_on_same_port(redis_server: RedisServer) -> None:
    """A private server can be killed and brought back on the same port (for fault tests)."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping()
        redis_server.stop()
        redis_server.start()
        assert client.ping()  # redis-py reconnects on the next command
    finally:
        client.close()
