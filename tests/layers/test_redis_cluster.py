"""The Redis layers on a real three-node Redis Cluster (``redis_cluster`` fixture)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from bayou.layers import BaseChannelLayer
from bayou.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from bayou.layers.redis.hosts import decode_hosts
from bayou.testing.layers import ChannelLayerConformance
from tests.support.redis import RedisCluster
from tests.support.timeouts import scaled


def _prefix() -> str:
    return f"cl{uuid.uuid4().hex[:8]}"


class TestRedisChannelLayerOnCluster(ChannelLayerConformance):
    """RedisChannelLayer passes the conformance suite on a Redis Cluster."""

    test_expiry = 1.0

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: RedisCluster) -> None:
        self.cluster_url = redis_cluster.url

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        config.setdefault("prefix", _prefix())
        return RedisChannelLayer(hosts=[{"cluster": self.cluster_url}], **config)


class TestRedisPubSubChannelLayerOnCluster(ChannelLayerConformance):
    """RedisPubSubChannelLayer passes the conformance suite on a Redis Cluster."""

    test_expiry = 1.0

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: RedisCluster) -> None:
        self.cluster_url = redis_cluster.url

    async def make_layer(self, **config: Any) -> BaseChannelLayer:
        config.setdefault("prefix", _prefix())
        return RedisPubSubChannelLayer(hosts=[{"cluster": self.cluster_url}], **config)


def _tag_shard(key: bytes, prefix: str) -> int:
    """The logical shard in the hash tag of ``key`` (``{<prefix>:<shard>}:...``)."""
    text = key.decode()
    head = "{" + prefix + ":"
    assert text.startswith(head), text
    return int(text[len(head) : text.index("}")])


async def test_cluster_keys_share_one_slot_per_shard_and_spread_over_nodes(
    redis_cluster: RedisCluster,
) -> None:
    """Every key of one logical shard has one hash slot (so each script's keys do), the
    keys of a group_send's group and its member queues live where the hash says, and
    twenty groups spread their keys over more than one node."""
    prefix = _prefix()
    layer = RedisChannelLayer(
        hosts=[{"cluster": redis_cluster.url, "cluster_shards": 16}], prefix=prefix
    )
    try:
        process_channel = await layer.new_channel()
        groups = [f"group{index}" for index in range(20)]
        for index, group in enumerate(groups):
            await layer.group_add(group, f"plain{index}")
            await layer.group_add(group, process_channel)
        for index, group in enumerate(groups):
            await layer.group_send(group, {"type": "hello", "n": index})
        for index in range(len(groups)):
            message = await layer.receive(f"plain{index}")
            assert message == {"type": "hello", "n": index}
        received = sorted([(await layer.receive(process_channel))["n"] for _ in groups])
        assert received == list(range(len(groups)))

        # A group's zset and its members' queues: each key's tag is the shard the
        # consistent hash gives its name, and a tag always maps to one slot.
        for index, group in enumerate(groups):
            group_key = layer._key("group", group)
            assert key_slot(group_key.encode()) == key_slot(layer._key("gcap", group).encode())
            assert _tag_shard(group_key.encode(), prefix) == layer._shard(group)
            plain_key = layer._key("ch", f"plain{index}")
            assert _tag_shard(plain_key.encode(), prefix) == layer._shard(f"plain{index}")

        # Re-send so the plain queues hold data, then look where the keys really are.
        for group in groups:
            await layer.group_send(group, {"type": "again"})
        nodes_with_keys = 0
        slots_by_shard: dict[int, set[int]] = {}
        for port in redis_cluster.ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=scaled(5))
            try:
                keys = list(client.scan_iter(match="{" + prefix + ":*", count=1000))
            finally:
                client.close()
            if keys:
                nodes_with_keys += 1
            for key in keys:
                slots_by_shard.setdefault(_tag_shard(key, prefix), set()).add(key_slot(key))
        assert nodes_with_keys > 1
        assert len(slots_by_shard) > 1
        assert all(len(slots) == 1 for slots in slots_by_shard.values())
    finally:
        await layer.flush()
        await layer.close()


async def test_pubsub_group_send_across_cluster_nodes(redis_cluster: RedisCluster) -> None:
    """Two pub/sub layer instances (two processes) on the cluster: group_send from one
    reaches members of both, whatever node each subscribed on."""
    prefix = _prefix()
    hosts = [{"cluster": redis_cluster.url, "cluster_shards": 8}]
    first = RedisPubSubChannelLayer(hosts=hosts, prefix=prefix)
    second = RedisPubSubChannelLayer(hosts=hosts, prefix=prefix)
    try:
        a = await first.new_channel()
        b = await second.new_channel()
        groups = [f"room{index}" for index in range(6)]
        for group in groups:
            await first.group_add(group, a)
            await second.group_add(group, b)
        for group in groups:
            await first.group_send(group, {"type": "chat", "group": group})
        for layer, channel in ((first, a), (second, b)):
            got = sorted([(await layer.receive(channel))["group"] for _ in groups])
            assert got == sorted(groups)
    finally:
        await first.flush()
        await first.close()
        await second.close()


def test_cluster_host_config_is_validated() -> None:
    """Cluster entries: one of 'cluster'/'cluster_nodes', the only entry, sane shards."""
    spec = decode_hosts([{"cluster_nodes": ["127.0.0.1:7000", ("127.0.0.1", 7001)]}])[0]
    assert spec.is_cluster
    assert spec.cluster_nodes == ("redis://127.0.0.1:7000", "redis://127.0.0.1:7001")
    assert spec.cluster_shards == 16
    with pytest.raises(ValueError, match="only entry"):
        decode_hosts([{"cluster": "redis://127.0.0.1:7000"}, "redis://127.0.0.1:6379"])
    with pytest.raises(ValueError, match="exactly one"):
        decode_hosts([{"cluster": "redis://a:1", "cluster_nodes": ["redis://b:2"]}])
    with pytest.raises(ValueError, match="cluster_shards"):
        decode_hosts([{"cluster": "redis://a:1", "cluster_shards": 0}])
    with pytest.raises(ValueError, match="prefix"):
        RedisChannelLayer(hosts=[{"cluster": "redis://a:1"}], prefix="a{b}")
    layer = RedisChannelLayer(hosts=[{"cluster": "redis://a:1", "cluster_shards": 4}])
    assert layer.ring_size == 4


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_single_logical_shard_uses_the_one_script_group_send(
    redis_cluster: RedisCluster, layer_class: type[RedisChannelLayer]
) -> None:
    """With cluster_shards=1 every key shares one slot and group_send is the
    single-script form; it reaches process-specific and plain members."""
    layer = layer_class(
        hosts=[{"cluster": redis_cluster.url, "cluster_shards": 1}], prefix=_prefix()
    )
    try:
        assert layer.ring_size == 1
        channel = await layer.new_channel()
        await layer.group_add("solo", channel)
        await layer.group_add("solo", "solo.plain")
        await layer.group_send("solo", {"type": "one"})
        assert await layer.receive(channel) == {"type": "one"}
        assert await layer.receive("solo.plain") == {"type": "one"}
    finally:
        await layer.flush()
        await layer.close()
