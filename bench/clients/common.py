"""Shared pieces of the load clients: latency histogram, rlimits, the stdio control channel.

Control protocol (one line each way, JSON after the keyword):
  client -> run.py   ``READY {"connected": n, "failed": m}``  once every connection is open
  run.py -> client   ``GO {"start_ns": t0, "end_ns": t1}``    measure window in time.monotonic_ns()
  client -> run.py   ``DONE {...results...}``                   after the window closed
CLOCK_MONOTONIC is system-wide on Linux, so run.py can sample the server's CPU
time at exactly the window the clients count in.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import sys
from typing import Any

__all__ = [
    "Histogram",
    "emit",
    "raise_nofile",
    "read_command",
    "use_uvloop",
]

# Log-scale buckets 2% wide: ~1400 ints cover 1 ns .. 100 s, and histograms from
# several client processes merge by adding counts.
_BASE = math.log(1.02)


class Histogram:
    """Latency histogram in nanoseconds with 2% resolution."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, ns: int) -> None:
        b = int(math.log(ns if ns > 0 else 1) / _BASE)
        c = self.counts
        c[b] = c.get(b, 0) + 1

    def to_json(self) -> dict[str, int]:
        return {str(k): v for k, v in self.counts.items()}


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def emit(keyword: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(f"{keyword} {json.dumps(payload)}\n")
    sys.stdout.flush()


async def read_command(expected: str, wait: float) -> dict[str, Any]:
    """Wait (bounded) for ``expected`` on stdin; EOF or a timeout ends the client."""
    loop = asyncio.get_running_loop()
    line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), wait)
    keyword, _, rest = line.strip().partition(" ")
    if keyword != expected:
        raise SystemExit(f"expected {expected!r} from run.py, got {line!r}")
    result: dict[str, Any] = json.loads(rest) if rest else {}
    return result
