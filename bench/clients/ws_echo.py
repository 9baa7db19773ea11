"""WebSocket echo load: N connections, each sends a message, waits for the echo, repeats.

picows (Cython frame codec, masking in C) on uvloop keeps the client cheap; run.py
also reads this process's CPU use to flag rounds where the client was the limit.
Bounded: at most ``--max-per-conn`` round trips per connection and nothing after
the window's end; the process gives up ``--deadline`` seconds after start.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from clients.common import Histogram, emit, raise_nofile, read_command, use_uvloop

_now = time.monotonic_ns


class _Shared:
    __slots__ = ("count", "end_ns", "errors", "hist", "payload", "running", "start_ns")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.start_ns = 1 << 62
        self.end_ns = 1 << 62
        self.running = False
        self.count = 0
        self.errors = 0
        self.hist = Histogram()


class _EchoConn(WSListener):
    def __init__(self, shared: _Shared, max_rt: int) -> None:
        self.shared = shared
        self.left = max_rt
        self.sent_at = 0
        self.transport: WSTransport | None = None
        self.done = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def kick(self) -> None:
        assert self.transport is not None
        self.sent_at = _now()
        self.transport.send(WSMsgType.TEXT, self.shared.payload)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()
            return
        now = _now()
        s = self.shared
        if s.start_ns <= now < s.end_ns:
            s.count += 1
            # Every 4th round trip is enough for p99 and keeps the client cheaper
            # (the client's CPU, not the server, limits the fastest servers here).
            if not s.count & 3:
                s.hist.add(now - self.sent_at)
        self.left -= 1
        if s.running and now < s.end_ns and self.left > 0:
            self.sent_at = now
            transport.send(WSMsgType.TEXT, s.payload)
        elif not self.done.done():
            self.done.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.shared.running and not self.done.done():
            self.shared.errors += 1
        if not self.done.done():
            self.done.set_result(None)


async def _main(args: argparse.Namespace) -> None:
    raise_nofile()
    shared = _Shared(b"x" * args.size)
    sem = asyncio.Semaphore(args.connect_concurrency)
    conns: list[_EchoConn] = []
    failed = 0

    async def connect() -> None:
        nonlocal failed
        async with sem:
            try:
                _, listener = await ws_connect(
                    lambda: _EchoConn(shared, args.max_per_conn), args.url
                )
            except Exception:
                failed += 1
                return
            assert isinstance(listener, _EchoConn)
            conns.append(listener)

    await asyncio.gather(*(connect() for _ in range(args.conns)))
    emit("READY", {"connected": len(conns), "failed": failed})
    go = await read_command("GO", wait=args.deadline)
    shared.start_ns = int(go["start_ns"])
    shared.end_ns = int(go["end_ns"])
    # CPU and wall over the same span (GO to the end), so client CPU % is not inflated
    # by the warm-up the CPU figure includes.
    cpu0, wall0 = time.process_time(), _now()
    shared.running = True
    for conn in conns:
        conn.kick()
    remaining = (shared.end_ns - _now()) / 1e9 + 2.0
    # Connections finish at the window's end (or at max_rt); a stuck one must not hang us.
    if conns:
        await asyncio.wait([c.done for c in conns], timeout=max(remaining, 0.1))
    shared.running = False
    cpu = time.process_time() - cpu0
    wall = max((_now() - wall0) / 1e9, 1e-9)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.disconnect()
    result: dict[str, Any] = {
        "round_trips": shared.count,
        "errors": shared.errors,
        "hist": shared.hist.to_json(),
        "client_cpu_s": cpu,
        "client_wall_s": wall,
    }
    emit("DONE", result)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--conns", type=int, required=True)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--max-per-conn", type=int, default=5_000_000)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--deadline", type=float, default=120.0)
    args = parser.parse_args()
    use_uvloop()
    asyncio.run(asyncio.wait_for(_main(args), args.deadline))


if __name__ == "__main__":
    main()
