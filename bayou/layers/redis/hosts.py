"""Turning the ``hosts`` setting into redis-py connection pools.

Accepted forms (as in channels_redis 4.x), one per shard:

* ``"redis://[:password@]host:port/db"``, ``"rediss://..."`` (TLS) and
  ``"unix:///path/to/redis.sock"`` URLs;
* ``(host, port)`` tuples or lists;
* ``{"address": url, **connection_kwargs}`` (URL plus redis-py options such as
  ``"ssl_cert_reqs": None``, ``"max_connections"``, ``"socket_timeout"``);
* any other dict of redis-py connection kwargs (``{"host": ..., "port": ...}``);
* Sentinel: ``{"sentinels": [(host, port), ...], "master_name": "mymaster",
  "sentinel_kwargs": {...}, **connection_kwargs}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HOSTS",
    "DEFAULT_SOCKET_TIMEOUT",
    "HostSpec",
    "close_pool",
    "create_pool",
    "decode_hosts",
]

DEFAULT_HOSTS: list[Any] = ["redis://localhost:6379"]


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
    return specs


def _decode_one(entry: object) -> HostSpec:
    if isinstance(entry, str):
        return HostSpec(identity=entry, url=entry)
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        host, port = entry
        return HostSpec(identity=f"{host}:{port}", kwargs={"host": host, "port": int(port)})
    if isinstance(entry, Mapping):
        options = dict(entry)
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


async def close_pool(pool: ConnectionPool) -> None:
    """Disconnect every connection of ``pool`` (and, for Sentinel, its sentinel clients)."""
    with contextlib.suppress(Exception):
        await pool.disconnect()
    manager = getattr(pool, "sentinel_manager", None)
    for client in getattr(manager, "sentinels", ()):
        with contextlib.suppress(Exception):
            await client.aclose()
