"""Drive a Redis channel layer directly (no WebSocket server): group members and a sender.

Roles:
  member  one layer instance; creates --channels channels with ``new_channel()``, adds
          them to --group, prints ``READY``, then receives on all of them until each got
          --expect messages, or --quiet s pass without a message once any arrived, or
          --deadline; prints ``DONE {"received": n}``, then waits for ``STOP`` before
          it cleans up (so cleanup commands stay out of run.py's count).
  send    one layer instance; --warmup ``group_send`` calls (scripts loaded, connections
          open), ``READY``; on ``GO`` makes --calls sequential ``group_send`` calls and
          prints ``DONE`` with each call's wall time (ns) and the number of Redis commands
          this process sent during them (counted in redis-py's command packer, so
          pipelined commands count one each).
The layer class is given by its import path (``--backend``); it is built with
``hosts=[--redis]`` and nothing else. Bounded: fixed counts, every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import time
from typing import Any

from clients.common import emit, read_command, use_uvloop

_MESSAGE = {"type": "bench.message", "text": "x" * 100}


def _make_layer(backend: str, url: str) -> Any:
    module, _, name = backend.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(hosts=[url])


async def _close(layer: Any) -> None:
    # bayou: close(); channels_redis: close_pools() (core) / flush() (pubsub).
    for name in ("close", "close_pools"):
        method = getattr(layer, name, None)
        if method is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(method(), 5)
            return


async def _member(args: argparse.Namespace) -> None:
    layer = _make_layer(args.backend, args.redis)
    channels = [await layer.new_channel() for _ in range(args.channels)]
    for ch in channels:
        await layer.group_add(args.group, ch)
    expected = args.channels * args.expect
    state = {"received": 0, "last": time.monotonic()}
    all_in = asyncio.Event()

    async def receive(ch: str) -> None:
        for _ in range(args.expect):
            await layer.receive(ch)
            state["received"] += 1
            state["last"] = time.monotonic()
            if state["received"] >= expected:
                all_in.set()

    tasks = [asyncio.ensure_future(receive(ch)) for ch in channels]
    emit("READY", {"channels": len(channels)})
    deadline = time.monotonic() + args.deadline
    while not all_in.is_set() and time.monotonic() < deadline:
        if state["received"] and time.monotonic() - state["last"] > args.quiet:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 0.05)
    emit("DONE", {"received": state["received"], "expected": expected})
    # Stay connected (no unsubscribe / cleanup commands) until run.py has read the
    # server's command counts.
    with contextlib.suppress(TimeoutError, SystemExit):
        await read_command("STOP", wait=60)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await _close(layer)


def _count_commands() -> list[int]:
    """Patch redis-py's asyncio command packer to count commands; return the counter."""
    from redis.asyncio.connection import AbstractConnection

    counter = [0]
    original = AbstractConnection.pack_command

    def pack_command(self: Any, *args: Any) -> Any:
        counter[0] += 1
        return original(self, *args)

    AbstractConnection.pack_command = pack_command  # type: ignore[method-assign]
    return counter


async def _send(args: argparse.Namespace) -> None:
    counter = _count_commands()
    layer = _make_layer(args.backend, args.redis)
    for _ in range(args.warmup):
        await layer.group_send(args.group, _MESSAGE)
    emit("READY", {})
    await read_command("GO", wait=args.deadline)
    before = counter[0]
    walls: list[int] = []
    for _ in range(args.calls):
        t0 = time.perf_counter_ns()
        await layer.group_send(args.group, _MESSAGE)
        walls.append(time.perf_counter_ns() - t0)
    emit("DONE", {"wall_ns": walls, "client_commands": counter[0] - before})
    await _close(layer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["member", "send"])
    parser.add_argument("--backend", required=True, help="import path of the layer class")
    parser.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0")
    parser.add_argument("--group", default="bench")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--expect", type=int, default=1, help="messages per channel")
    parser.add_argument("--quiet", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=120.0)
    args = parser.parse_args()
    use_uvloop()
    run = _member if args.role == "member" else _send
    asyncio.run(asyncio.wait_for(run(args), args.deadline + 30))


if __name__ == "__main__":
    main()
