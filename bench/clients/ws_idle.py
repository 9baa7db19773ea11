"""Open N WebSockets that then stay idle; report handshakes/s, hold them until told to close.

run.py reads the server's RSS while the connections are held. Bounded by the
connection count and a deadline; a failed handshake is counted, not retried.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from clients.common import emit, raise_nofile, read_command, use_uvloop


class _Idle(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()


async def _main(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    sem = asyncio.Semaphore(args.connect_concurrency)
    transports: list[WSTransport] = []
    failed = 0

    async def connect() -> None:
        nonlocal failed
        async with sem:
            try:
                transport, _ = await ws_connect(_Idle, args.url, websocket_handshake_timeout=10)
            except Exception:
                failed += 1
                return
            transports.append(transport)

    t0 = time.monotonic()
    await asyncio.gather(*(connect() for _ in range(args.conns)))
    elapsed = time.monotonic() - t0
    # Let the server finish whatever it does after the handshake (app task start,
    # buffers) before run.py samples its RSS.
    await asyncio.sleep(args.settle)
    open_now = sum(1 for t in transports if not t.is_disconnected)
    emit(
        "READY",
        {
            "connected": len(transports),
            "open": open_now,
            "failed": failed,
            "elapsed_s": elapsed,
            "nofile": nofile,
        },
    )
    await read_command("CLOSE", wait=args.deadline)
    for t in transports:
        t.disconnect()
    emit("DONE", {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--conns", type=int, required=True)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--deadline", type=float, default=120.0)
    args = parser.parse_args()
    use_uvloop()
    asyncio.run(asyncio.wait_for(_main(args), args.deadline))


if __name__ == "__main__":
    main()
