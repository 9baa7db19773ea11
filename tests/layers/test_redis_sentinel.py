"""RedisChannelLayer behind a real Redis Sentinel (redis-server in sentinel mode)."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bayou.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from tests.support.net import free_port
from tests.support.redis import RedisServer, find_redis_server
from tests.support.timeouts import scaled


@pytest.fixture
def sentinel_port(redis_server: RedisServer) -> Iterator[int]:
    """A Sentinel monitoring the private server as master "bayoumaster"."""
    binary = find_redis_server()
    assert binary is not None
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bayou-sentinel-") as directory:
        config = Path(directory) / "sentinel.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor bayoumaster 127.0.0.1 {redis_server.port} 1\n"
            "sentinel down-after-milliseconds bayoumaster 5000\n"
        )
        process = subprocess.Popen(
            [binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            deadline = time.monotonic() + scaled(10)
            while True:
                try:
                    if client.sentinel_get_master_addr_by_name("bayoumaster"):
                        break
                except redis.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "sentinel did not start"
                time.sleep(0.05)
            client.close()
            yield port
        finally:
            process.kill()
            process.wait(timeout=scaled(10))


@pytest.mark.parametrize("cls", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_layer_through_sentinel(sentinel_port: int, cls: type[RedisChannelLayer]) -> None:
    """A Sentinel host entry finds the master: sends, group sends and receives work."""
    host = {
        "sentinels": [("127.0.0.1", sentinel_port)],
        "master_name": "bayoumaster",
        "sentinel_kwargs": {"socket_timeout": 2},
        "db": 0,
    }
    layer = cls(hosts=[host], prefix=f"sent{uuid.uuid4().hex[:8]}")
    try:
        channel = await layer.new_channel()
        await layer.group_add("sentinel-room", channel)
        await layer.group_send("sentinel-room", {"type": "via.sentinel"})
        await layer.send("sentinel.plain", {"type": "plain"})
        assert await asyncio.wait_for(layer.receive(channel), scaled(5)) == {"type": "via.sentinel"}
        assert await asyncio.wait_for(layer.receive("sentinel.plain"), scaled(5)) == {
            "type": "plain"
        }
    finally:
        await layer.flush()
        await layer.close()


def _spawn(binary: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ping(port: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    deadline = time.monotonic() + scaled(10)
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"nothing answers on port {port}"
            time.sleep(0.05)
    finally:
        client.close()


@pytest.mark.slow
async def test_failover_to_replica(tmp_path: Path) -> None:
    """When the master dies and Sentinel promotes the replica, the receive loop reconnects
    to the new master by itself and group messages flow again."""
    binary = find_redis_server()
    assert binary is not None
    master, replica, sentinel = free_port(), free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes = [
        _spawn(binary, "--port", str(master), "--dir", str(tmp_path), *common),
        _spawn(
            binary,
            "--port",
            str(replica),
            "--dir",
            str(tmp_path),
            "--replicaof",
            "127.0.0.1",
            str(master),
            *common,
        ),
    ]
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor failmaster 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds failmaster 500\n"
        "sentinel failover-timeout failmaster 3000\n"
    )
    receiver = sender = None
    try:
        _wait_ping(master)
        _wait_ping(replica)
        processes.append(_spawn(binary, str(config), "--sentinel"))
        _wait_ping(sentinel)
        host = {"sentinels": [("127.0.0.1", sentinel)], "master_name": "failmaster"}
        prefix = f"fail{uuid.uuid4().hex[:8]}"
        receiver = RedisChannelLayer(hosts=[host], prefix=prefix)
        sender = RedisChannelLayer(hosts=[host], prefix=prefix)
        channel = await receiver.new_channel()
        await receiver.group_add("fail-room", channel)
        await sender.group_send("fail-room", {"type": "before"})
        assert await asyncio.wait_for(receiver.receive(channel), scaled(5)) == {"type": "before"}

        processes[0].kill()
        processes[0].wait()
        waiting = asyncio.ensure_future(receiver.receive(channel))
        delivered = False
        for _ in range(300):  # bounded: about 30 s
            try:
                await sender.group_send("fail-room", {"type": "after"})
            except Exception:
                await asyncio.sleep(0.1)
                continue
            done, _ = await asyncio.wait({waiting}, timeout=scaled(0.1))
            if done:
                delivered = waiting.result() == {"type": "after"}
                break
        assert delivered
        assert receiver.reconnects >= 1
    finally:
        for layer in (receiver, sender):
            if layer is not None:
                await layer.close()
        for process in processes:
            process.kill()
            process.wait()
