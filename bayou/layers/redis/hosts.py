"""Turning the ``hosts`` setting into redis-py connection pools.

Accepted forms (as in channels_redis 4.x), one per shard:

* ``"redis://[:password@]host:port/db"``, ``"rediss://..."`` (TLS) and
  ``"unix:///path/to/redis.sock"`` URLs;
* ``(host, port)`` tuples or lists;
* ``{"address": url, **connection_kwargs}`` (URL plus redis-py options such as
  ``"ssl_cert_reqs": None``, ``"max_connections"``, ``"socket_timeout"``);
* any other dict of redis-py connection kwargs (``{"host": ..., "port": ...}``);
* Sentinel: ``{"sentinels": [(host, port), ...], "master_name": "mymaster",
  "sentinel_kwargs": {...}, **connection_kwargs}``;
* Redis Cluster (must be the only entry): ``{"cluster": "redis://host:port",
  "cluster_shards": 16, **connection_kwargs}`` or ``{"cluster_nodes": ["redis://h1:p1",
  ("h2", p2), ...], ...}``. The layer then talks to the cluster through redis-py's
  ``RedisCluster`` and spreads its keys over ``cluster_shards`` logical shards (hash
  tags), see ``docs/topics/redis-design.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = [
    "DEFAULT_CLUSTER_SHARDS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HOSTS",
    "DEFAULT_SOCKET_TIMEOUT",
    "HostSpec",
    "close_pool",
    "create_cluster",
    "create_node_client",
    "create_pool",
    "decode_hosts",
]

DEFAULT_HOSTS: list[Any] = ["redis://localhost:6379"]
#: Logical shards (hash tags) a cluster host is split into unless ``cluster_shards`` says.
DEFAULT_CLUSTER_SHARDS = 16


@dataclass(frozen=True)
class HostSpec:
    """One shard: how to connect to it and the identity used for consistent hashing."""

    #: Stable identity of the shard (URL, ``host:port`` or the Sentinel master name).
    identity: str
    url: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    sentinel_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Redis Cluster: the startup nodes (URLs) and the number of logical shards (0: no cluster).
    cluster_nodes: tuple[str, ...] = ()
    cluster_shards: int = 0

    @property
    def is_cluster(self) -> bool:
        """True for a Redis Cluster entry."""
        return self.cluster_shards > 0


def decode_hosts(hosts: object) -> list[HostSpec]:
    """Parse the ``hosts`` option; ``ValueError`` for a bare string or an unknown form."""
    if hosts is None:
        hosts = DEFAULT_HOSTS
    if isinstance(hosts, (str, bytes)):
        raise ValueError("You must pass a list of Redis hosts, even if there is only one.")
    if not isinstance(hosts, Sequence) or not hosts:
        raise ValueError("hosts must be a non-empty list of Redis hosts")
    specs = [_decode_one(entry) for entry in hosts]
    identities = [spec.identity for spec in specs]
    if len(set(identities)) != len(identities):
        raise ValueError(f"hosts contains the same Redis server twice: {identities}")
    if len(specs) > 1 and any(spec.is_cluster for spec in specs):
        raise ValueError("A Redis Cluster entry must be the only entry of hosts")
    return specs


def _decode_one(entry: object) -> HostSpec:
    if isinstance(entry, str):
        return HostSpec(identity=entry, url=entry)
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        host, port = entry
        return HostSpec(identity=f"{host}:{port}", kwargs={"host": host, "port": int(port)})
    if isinstance(entry, Mapping):
        options = dict(entry)
        if "cluster" in options or "cluster_nodes" in options:
            return _decode_cluster(options)
        if "sentinels" in options:
            sentinels = tuple((str(h), int(p)) for h, p in options.pop("sentinels"))
            master = options.pop("master_name", None)
            if not master:
                raise ValueError("A Sentinel host needs a 'master_name'")
            sentinel_kwargs = dict(options.pop("sentinel_kwargs", None) or {})
            return HostSpec(
                identity=f"sentinel:{master}",
                kwargs=options,
                sentinels=sentinels,
                master_name=str(master),
                sentinel_kwargs=sentinel_kwargs,
            )
        if "address" in options:
            address = options.pop("address")
            if isinstance(address, (tuple, list)):
                host, port = address
                options.update(host=host, port=int(port))
                return HostSpec(identity=f"{host}:{port}", kwargs=options)
            return HostSpec(identity=str(address), url=str(address), kwargs=options)
        identity = f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
        if "path" in options:
            identity = f"unix:{options['path']}"
        return HostSpec(identity=f"{identity}/{options.get('db', 0)}", kwargs=options)
    raise ValueError(f"Cannot understand Redis host {entry!r}")


def _node_url(node: object) -> str:
    if isinstance(node, str):
        return node if "://" in node else f"redis://{node}"
    if isinstance(node, (tuple, list)) and len(node) == 2:
        return f"redis://{node[0]}:{int(node[1])}"
    raise ValueError(f"Cannot understand Redis Cluster node {node!r}")


def _decode_cluster(options: dict[str, Any]) -> HostSpec:
    single = options.pop("cluster", None)
    many = options.pop("cluster_nodes", None)
    if (single is None) == (many is None):
        raise ValueError("A Redis Cluster host needs exactly one of 'cluster' and 'cluster_nodes'")
    nodes: tuple[str, ...]
    if single is not None:
        nodes = (_node_url(single),)
    elif isinstance(many, (str, bytes)) or not isinstance(many, Sequence) or not many:
        raise ValueError("'cluster_nodes' must be a non-empty list of Redis Cluster nodes")
    else:
        nodes = tuple(_node_url(node) for node in many)
    shards = options.pop("cluster_shards", DEFAULT_CLUSTER_SHARDS)
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 16384:
        raise ValueError(f"cluster_shards must be an integer in 1..16384, not {shards!r}")
    return HostSpec(
        identity="cluster:" + ",".join(nodes),
        url=nodes[0],
        kwargs=options,
        cluster_nodes=nodes,
        cluster_shards=shards,
    )


#: Seconds an ordinary command (send, group_send, ...) may wait for Redis' reply before
#: the caller gets ``RedisUnavailable`` (redis-py's default is to wait forever, so a
#: silently vanished server would hang callers). Override with ``socket_timeout``.
DEFAULT_SOCKET_TIMEOUT = 10.0
#: Seconds to establish a connection (``socket_connect_timeout`` overrides it).
DEFAULT_CONNECT_TIMEOUT = 5.0


def default_retry() -> Retry:
    """Retries for ordinary commands: 3 attempts with jittered exponential backoff.

    Short on purpose: a caller waits at most about a second before getting a clear
    error, and the receive loop has its own, unbounded reconnect loop. Only connection
    errors are retried, not timeouts: a command that timed out may still run when Redis
    wakes up (e.g. after ``CLIENT PAUSE``), and running a ``group_send`` script again
    would deliver its message several times.
    """
    return Retry(
        ExponentialWithJitterBackoff(cap=0.5, base=0.05),
        3,
        supported_errors=(RedisConnectionError,),
    )


def create_pool(spec: HostSpec, **overrides: Any) -> ConnectionPool:
    """A new connection pool for ``spec``; ``overrides`` win over the configured options."""
    kwargs: dict[str, Any] = {
        "retry": default_retry(),
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
    }
    kwargs.update(spec.kwargs)
    kwargs.update(overrides)
    if spec.master_name is not None:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(spec.sentinels), sentinel_kwargs=dict(spec.sentinel_kwargs)
        )
        return SentinelConnectionPool(  # type: ignore[no-untyped-call]
            spec.master_name, sentinel, **kwargs
        )
    if spec.url is not None:
        return ConnectionPool.from_url(spec.url, **kwargs)
    return ConnectionPool(**kwargs)


def _cluster_kwargs(spec: HostSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "retry": default_retry(),
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
    }
    # Connection options in the first URL (password, TLS, ...) apply to every node.
    url_options: dict[str, Any] = dict(parse_url(spec.cluster_nodes[0]))
    for name in ("host", "port", "db", "path", "connection_class"):
        url_options.pop(name, None)
    if spec.cluster_nodes[0].startswith("rediss://"):
        url_options["ssl"] = True
    kwargs.update(url_options)
    kwargs.update(spec.kwargs)
    kwargs.update(overrides)
    return kwargs


class _Cluster(RedisCluster):
    """``RedisCluster`` that finishes its first initialization before any command.

    redis-py 8.1 resolves a command's routing policy before initializing the client;
    many commands issued at once on a fresh client then race on the startup node's
    connections ("'NoneType' object has no attribute 'writelines'"). Initializing
    first (under redis-py's own lock) avoids it.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "_initialize", False):
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def create_cluster(spec: HostSpec, **overrides: Any) -> RedisCluster:
    """A new ``RedisCluster`` client for the cluster ``spec``; ``overrides`` win."""
    kwargs = _cluster_kwargs(spec, overrides)
    nodes = []
    for url in spec.cluster_nodes:
        parsed = parse_url(url)
        nodes.append(
            ClusterNode(str(parsed.get("host", "localhost")), int(parsed.get("port", 6379)))
        )
    return _Cluster(startup_nodes=nodes, **kwargs)


def create_node_client(spec: HostSpec, host: str, port: int, **overrides: Any) -> Redis:
    """A plain client for one node of the cluster ``spec`` (for Pub/Sub)."""
    kwargs = _cluster_kwargs(spec, overrides)
    if kwargs.pop("ssl", False):
        from redis.asyncio.connection import SSLConnection

        kwargs["connection_class"] = SSLConnection
    for name in list(kwargs):
        if name.startswith("ssl_") and "connection_class" not in kwargs:
            kwargs.pop(name)
    pool = ConnectionPool(host=host, port=port, **kwargs)
    return Redis(connection_pool=pool)


async def close_pool(pool: ConnectionPool) -> None:
    """Disconnect every connection of ``pool`` (and, for Sentinel, its sentinel clients)."""
    with contextlib.suppress(Exception):
        await pool.disconnect()
    manager = getattr(pool, "sentinel_manager", None)
    for client in getattr(manager, "sentinels", ()):
        with contextlib.suppress(Exception):
            await client.aclose()
