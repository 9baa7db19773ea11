"""The four Redis-layer contestants and the setup the Redis suites share.

Each measurement gets its own private redis-server (``harness.redisserver``) and,
for the WebSocket suites, two fresh server processes of the contestant's framework,
both configured with the contestant's layer on that Redis. Members are spread
round-robin over the two processes, so a group message crosses Redis to reach the
other process's half of the group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.model import Contestant, Context
from harness.procs import RunningServer, running_server
from harness.redisserver import RunningRedis, redis_unavailable, running_redis
from harness.servers import bayou_unavailable, server_argv
from harness.suites.django_common import (
    BAYOU_APP,
    CHANNELS_APP,
    GroupRun,
    bayou_django_unavailable,
    drive_group_client,
)

__all__ = [
    "BAYOU_LIST",
    "BAYOU_PUBSUB",
    "CHANNELS_LIST",
    "CHANNELS_PUBSUB",
    "LAYER_ENV",
    "REDIS_PEERS",
    "GroupRun",
    "redis_contestants",
    "redis_suite_unavailable",
    "run_group_client_on_two",
    "two_servers",
]

BAYOU_LIST = "bayou-redis"
BAYOU_PUBSUB = "bayou-pubsub"
CHANNELS_LIST = "channels_redis"
CHANNELS_PUBSUB = "channels_redis-pubsub"
REDIS_PEERS = (CHANNELS_LIST, CHANNELS_PUBSUB)

# The environment variable the bench Django settings read the layer's backend from.
LAYER_ENV = "BENCH_CHANNEL_LAYER"

_BACKENDS = {
    BAYOU_LIST: ("bayou", BAYOU_APP, "bayou.layers.redis.RedisChannelLayer"),
    BAYOU_PUBSUB: ("bayou", BAYOU_APP, "bayou.layers.redis.RedisPubSubChannelLayer"),
    CHANNELS_LIST: ("uvicorn", CHANNELS_APP, "channels_redis.core.RedisChannelLayer"),
    CHANNELS_PUBSUB: ("uvicorn", CHANNELS_APP, "channels_redis.pubsub.RedisPubSubChannelLayer"),
}


def redis_suite_unavailable() -> str | None:
    return redis_unavailable()


def redis_contestants(ctx: Context) -> list[Contestant]:
    """bayou's two Redis layers on the bayou server, channels_redis' two on uvicorn."""
    out: list[Contestant] = []
    reason = bayou_unavailable() or bayou_django_unavailable(ctx.python)
    for label, (server, app, backend) in _BACKENDS.items():
        if server == "bayou" and reason is not None:
            ctx.log(f"  ({label} skipped: {reason})")
            continue
        out.append(Contestant(label, server, app, {LAYER_ENV: backend}))
    return out


@contextlib.contextmanager
def two_servers(
    ctx: Context, contestant: Contestant, redis: RunningRedis
) -> Iterator[list[RunningServer]]:
    """Two fresh server processes of ``contestant`` sharing ``redis``, both pinned to the
    server CPU(s)."""
    env = {**contestant.env, "BENCH_REDIS_URL": redis.url}
    argv = server_argv(contestant.server, contestant.app)
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(f"{contestant.label}-{i}", argv, ctx.cpus, env))
            for i in (1, 2)
        ]
        yield servers


def run_group_client_on_two(
    ctx: Context, contestant: Contestant, argv_tail: list[str], timeout: float
) -> GroupRun:
    """Private Redis + two servers; run clients.groups with connections spread over both."""
    with running_redis(ctx.cpus) as redis, two_servers(ctx, contestant, redis) as servers:
        return drive_group_client(
            ctx, servers, argv_tail, timeout, slack=120, redis_cpu=redis.cpu_seconds
        )
