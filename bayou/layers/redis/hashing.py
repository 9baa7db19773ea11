"""Which Redis host (shard) owns a key.

Rendezvous (highest random weight) hashing over the hosts' identities: every key goes to
the host whose ``crc32(host identity + key)`` is highest. The result depends only on the
key and the set of host identities (not on the order of ``hosts``, nor on Python's
per-process ``hash()`` seed), so every process agrees and the mapping survives restarts.
Adding or removing one host moves only the keys that belonged to it (about ``1/n``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["consistent_hash", "shard_index"]


def shard_index(key: str | bytes, identities: Sequence[str]) -> int:
    """Index in ``identities`` of the host that owns ``key``."""
    if len(identities) == 1:
        return 0
    data = key.encode("utf-8") if isinstance(key, str) else key
    best = 0
    best_weight = -1
    for index, identity in enumerate(identities):
        # Seeding crc32 with the identity's checksum = crc32(identity + b"\0" + key).
        weight = zlib.crc32(data, zlib.crc32(identity.encode("utf-8") + b"\0"))
        if weight > best_weight:
            best, best_weight = index, weight
    return best


def consistent_hash(value: str | bytes, ring_size: int) -> int:
    """channels_redis-compatible helper: an index in ``range(ring_size)`` for ``value``.

    Kept for code that calls ``layer.consistent_hash()``; the layer itself routes with
    :func:`shard_index`, which is stable when hosts are reordered.
    """
    if ring_size == 1:
        return 0
    data = value.encode("utf-8") if isinstance(value, str) else value
    bigval = zlib.crc32(data) & 0xFFF
    return int(bigval / (4096 / ring_size))
