"""Configuration of the Redis layers: hosts, sharding, serializers, encryption."""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bayou.layers.redis import RedisChannelLayer
from bayou.layers.redis.hashing import shard_index
from bayou.layers.redis.hosts import decode_hosts
from bayou.layers.redis.serializers import (
    BaseMessageSerializer,
    JSONSerializer,
    SerializerDoesNotExist,
    registry,
)
from tests.support.net import free_port
from tests.support.redis import RedisServer, find_redis_server
from tests.support.timeouts import scaled


def test_hosts_forms() -> None:
    """URLs, (host, port) tuples, address dicts, kwargs dicts and Sentinel dicts decode."""
    specs = decode_hosts(
        [
            "redis://127.0.0.1:6379/0",
            ("10.0.0.2", 6380),
            {"address": "rediss://cache:6380", "ssl_cert_reqs": None},
            {"host": "other", "port": 6381, "db": 2},
            {"sentinels": [("s1", 26379)], "master_name": "main", "sentinel_kwargs": {"a": 1}},
            "unix:///tmp/redis.sock",
        ]
    )
    assert specs[0].url == "redis://127.0.0.1:6379/0"
    assert specs[1].kwargs == {"host": "10.0.0.2", "port": 6380}
    assert specs[2].url == "rediss://cache:6380"
    assert specs[2].kwargs == {"ssl_cert_reqs": None}
    assert specs[3].identity == "other:6381/2"
    assert specs[4].master_name == "main"
    assert specs[4].sentinels == (("s1", 26379),)
    assert specs[4].sentinel_kwargs == {"a": 1}
    assert specs[5].url == "unix:///tmp/redis.sock"


def test_hosts_errors() -> None:
    """A bare string, an empty list, a duplicate or a Sentinel without master raise ValueError."""
    with pytest.raises(ValueError, match="list of Redis hosts"):
        decode_hosts("redis://localhost")
    with pytest.raises(ValueError):
        decode_hosts([])
    with pytest.raises(ValueError, match="twice"):
        decode_hosts(["redis://a", "redis://a"])
    with pytest.raises(ValueError, match="master_name"):
        decode_hosts([{"sentinels": [("s", 1)]}])


def test_shard_index_is_stable_and_order_independent() -> None:
    """A key maps to the same host identity whatever the order of hosts; adding a host
    moves only keys to the new host."""
    hosts = ["redis://a", "redis://b", "redis://c"]
    keys = [f"group-{n}" for n in range(500)]
    owners = {key: hosts[shard_index(key, hosts)] for key in keys}
    reordered = list(reversed(hosts))
    assert all(reordered[shard_index(key, reordered)] == owners[key] for key in keys)
    grown = [*hosts, "redis://d"]
    for key in keys:
        owner = grown[shard_index(key, grown)]
        assert owner in (owners[key], "redis://d")
    assert len(set(owners.values())) == 3


def test_serializer_registry() -> None:
    """json and msgpack are registered; unknown formats raise; custom classes register."""
    assert isinstance(registry.get_serializer("json"), JSONSerializer)
    with pytest.raises(SerializerDoesNotExist):
        registry.get_serializer("no-such-format")
    with pytest.raises(AssertionError):
        registry.register_serializer("broken", object)

    class Upper(BaseMessageSerializer):
        def as_bytes(self, message: Any) -> bytes:
            return json.dumps(message).encode()

        def from_bytes(self, data: bytes) -> Any:
            return json.loads(data)

    registry.register_serializer("upper-test", Upper)
    serializer = registry.get_serializer("upper-test", random_prefix_length=4)
    data = serializer.serialize({"type": "x"})
    assert len(data) == len(b'{"type": "x"}') + 4
    assert serializer.deserialize(data) == {"type": "x"}


def test_symmetric_encryption_with_key_rotation() -> None:
    """The first key encrypts, every key decrypts; a single string is refused."""
    old = registry.get_serializer("msgpack", symmetric_encryption_keys=["old-key"])
    rotated = registry.get_serializer("msgpack", symmetric_encryption_keys=["new-key", "old-key"])
    new_only = registry.get_serializer("msgpack", symmetric_encryption_keys=["new-key"])
    token = old.serialize({"type": "secret", "n": 1})
    assert b"secret" not in token
    assert rotated.deserialize(token) == {"type": "secret", "n": 1}
    assert new_only.deserialize(rotated.serialize({"type": "x"})) == {"type": "x"}
    with pytest.raises(ValueError, match="list"):
        registry.get_serializer("msgpack", symmetric_encryption_keys="one-key")


async def test_encrypted_layer_round_trip(redis_url: str) -> None:
    """A layer with symmetric_encryption_keys and JSON delivers sends and group sends."""
    layer = RedisChannelLayer(
        hosts=[redis_url],
        prefix=f"enc{uuid.uuid4().hex[:8]}",
        symmetric_encryption_keys=["k1"],
        serializer_format="json",
    )
    try:
        channel = await layer.new_channel()
        await layer.group_add("enc-room", channel)
        await layer.group_send("enc-room", {"type": "g", "text": "hé"})
        await layer.send(channel, {"type": "d"})
        assert await asyncio.wait_for(layer.receive(channel), scaled(5)) == {
            "type": "g",
            "text": "hé",
        }
        assert await asyncio.wait_for(layer.receive(channel), scaled(5)) == {"type": "d"}
    finally:
        await layer.flush()
        await layer.close()


@pytest.fixture
def second_server() -> Iterator[RedisServer]:
    """A second private redis-server, for sharding."""
    binary = find_redis_server()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="bayou-redis2-") as directory:
        server = RedisServer(binary=binary, port=free_port(), directory=directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.mark.parametrize("layer_class", ["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_sharded_layers_deliver_across_hosts(
    redis_server: RedisServer, second_server: RedisServer, layer_class: str
) -> None:
    """With two hosts, processes, groups and plain channels spread over both servers and
    every send, group send and receive still works between two instances."""
    import bayou.layers.redis as package

    cls = getattr(package, layer_class)
    hosts = [redis_server.url, second_server.url]
    prefix = f"shard{uuid.uuid4().hex[:8]}"
    first, second = cls(hosts=hosts, prefix=prefix), cls(hosts=hosts, prefix=prefix)
    try:
        # Host identities include the (random) ports, so choose names that land on both
        # shards rather than hoping 8 fixed names do (they all hash to one ~1% of runs).
        identities = [s.identity for s in first.hosts]
        per_shard: dict[int, list[str]] = {0: [], 1: []}
        for n in range(1000):
            name = f"room{n}"
            bucket = per_shard[shard_index(name, identities)]
            if len(bucket) < 4:
                bucket.append(name)
            if all(len(names) == 4 for names in per_shard.values()):
                break
        groups = sorted(per_shard[0] + per_shard[1])
        assert len(groups) == 8
        mine = [await first.new_channel(), await second.new_channel()]
        for group in groups:
            await first.group_add(group, mine[0])
            await second.group_add(group, mine[1])
            await first.group_add(group, f"plain.{group}")
        for group in groups:
            await second.group_send(group, {"type": "g", "group": group})
        for layer, channel in ((first, mine[0]), (second, mine[1])):
            got = [(await asyncio.wait_for(layer.receive(channel), scaled(5)))["group"]]
            got += [
                (await asyncio.wait_for(layer.receive(channel), scaled(5)))["group"]
                for _ in groups[1:]
            ]
            assert sorted(got) == groups
        for group in groups:
            message = await asyncio.wait_for(second.receive(f"plain.{group}"), scaled(5))
            assert message == {"type": "g", "group": group}
        await first.send(mine[1], {"type": "direct"})
        assert await asyncio.wait_for(second.receive(mine[1]), scaled(5)) == {"type": "direct"}
    finally:
        await first.flush()
        await first.close()
        await second.close()


def test_pools_have_timeouts_by_default() -> None:
    """Command pools time out (socket and connect) by default, so a vanished server
    cannot hang callers; configured values win; timeouts are not retried."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from bayou.layers.redis.hosts import (
        DEFAULT_CONNECT_TIMEOUT,
        DEFAULT_SOCKET_TIMEOUT,
        create_pool,
    )

    default, configured = decode_hosts(
        ["redis://127.0.0.1:1/0", {"address": "redis://127.0.0.1:2/0", "socket_timeout": 3}]
    )
    kwargs = create_pool(default).connection_kwargs
    assert kwargs["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT
    assert kwargs["socket_connect_timeout"] == DEFAULT_CONNECT_TIMEOUT
    assert not any(issubclass(RedisTimeoutError, e) for e in kwargs["retry"]._supported_errors)
    assert create_pool(configured).connection_kwargs["socket_timeout"] == 3


@pytest.mark.parametrize(
    "option", [{"block_timeout": 0}, {"process_ttl": 0}, {"group_send_timeout": -1}]
)
def test_timing_options_are_validated(option: dict[str, Any]) -> None:
    """block_timeout and process_ttl must be positive (0 would make BLPOP block forever
    and the receive loop's periodic work spin), group_send_timeout non-negative."""
    with pytest.raises(ValueError, match=next(iter(option))):
        RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"], **option)


def _record_drop(event: object) -> None:
    """A drop callback named by dotted path in test_on_drop_by_dotted_path."""


def test_on_drop_by_dotted_path() -> None:
    """on_drop may be given as a dotted path, as for the in-memory layer."""
    layer = RedisChannelLayer(
        hosts=["redis://127.0.0.1:1/0"], on_drop="tests.layers.test_redis_config:_record_drop"
    )
    assert layer.on_drop is _record_drop
