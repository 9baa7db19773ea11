"""Group fan-out load: members on /ws/group/<g>/, publishers on /ws/pub/<g>/.

Modes:
  broadcast  1 publisher, M members. Phase 1: 1 msg/s for --latency-seconds, per-delivery
             latency. Phase 2: a rate ladder (each step --step-seconds long); a step is
             lossless when every member got every message of the step; the ladder stops at
             the first failed step (or, with --overload-steps, at the first lossy one).
  many       P publishers each send --messages as fast as their connection allows into
             one group of M members; count deliveries against P x messages x M.
Each message is ``<step>:<send monotonic ns>:<seq>`` so a member can attribute and time
it; CLOCK_MONOTONIC is system-wide, so this works across processes too.
Bounded: fixed message counts, each wait has a deadline, and --deadline ends the process.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from clients.common import Histogram, emit, raise_nofile, read_command, use_uvloop

_now = time.monotonic_ns


class _Tally:
    """Deliveries per step and latency histograms, shared by every member connection."""

    def __init__(self) -> None:
        self.per_step: dict[int, int] = {}
        self.hist: dict[int, Histogram] = {}
        self.total = 0
        self.disconnects = 0
        self.last_ns = 0  # receipt time of the latest delivery
        self.step_last_ns: dict[int, int] = {}  # receipt time of each step's latest delivery

    def hist_for(self, step: int) -> Histogram:
        h = self.hist.get(step)
        if h is None:
            h = self.hist[step] = Histogram()
        return h


class _Member(WSListener):
    def __init__(self, tally: _Tally) -> None:
        self.tally = tally

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()
            return
        now = _now()
        step_s, sent_s, _ = frame.get_payload_as_ascii_text().split(":", 2)
        step = int(step_s)
        t = self.tally
        t.per_step[step] = t.per_step.get(step, 0) + 1
        t.total += 1
        t.last_ns = now
        t.step_last_ns[step] = now
        t.hist_for(step).add(now - int(sent_s))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.tally.disconnects += 1


class _Publisher(WSListener):
    def __init__(self) -> None:
        self.paused = False
        self.resumed: asyncio.Event = asyncio.Event()

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()


async def _open(urls: list[str], factory: Any, n: int, concurrency: int) -> tuple[list[Any], int]:
    """Open ``n`` connections, the i-th to ``urls[i % len(urls)]`` (spread over servers)."""
    sem = asyncio.Semaphore(concurrency)
    opened: list[Any] = []
    failed = 0

    async def one(url: str) -> None:
        nonlocal failed
        async with sem:
            try:
                opened.append(await ws_connect(factory, url, websocket_handshake_timeout=10))
            except Exception:
                failed += 1

    await asyncio.gather(*(one(urls[i % len(urls)]) for i in range(n)))
    return opened, failed


async def _wait_delivered(
    tally: _Tally, step: int, expected: int, quiet: float, cap: float
) -> None:
    """Return once ``expected`` deliveries of ``step`` arrived, or none came for ``quiet`` s.

    Never waits longer than ``cap`` seconds.
    """
    deadline = time.monotonic() + cap
    last = -1
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        got = tally.per_step.get(step, 0)
        if got >= expected:
            return
        if got != last:
            last, last_change = got, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        await asyncio.sleep(0.02)


async def _publish_at(transport: WSTransport, step: int, rate: float, count: int) -> None:
    """Send ``count`` messages evenly spaced at ``rate``/s (absolute schedule, no drift)."""
    start = time.monotonic()
    for seq in range(count):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        transport.send(WSMsgType.TEXT, f"{step}:{_now()}:{seq}".encode())


def _summary(hist: Histogram) -> dict[str, Any]:
    return hist.to_json()


async def _broadcast(
    args: argparse.Namespace, tally: _Tally, pub: WSTransport, members: int
) -> dict[str, Any]:
    # Phase 1: latency at 1 msg/s (step 0).
    n = int(args.latency_seconds)
    await _publish_at(pub, 0, 1.0, n)
    await _wait_delivered(tally, 0, n * members, quiet=2.0, cap=10.0)
    latency = {
        "delivered": tally.per_step.get(0, 0),
        "expected": n * members,
        "hist": _summary(tally.hist_for(0)),
    }
    # Phase 2: rate ladder, steps 1..; stop at the first failed step.
    # A step passes when nothing was lost AND the server kept up: the last delivery
    # came at most --max-lag s after the last publish (buffering without dropping
    # would otherwise pass any rate, just late).
    # With --overload-steps N the ladder goes on for up to N more steps after the
    # first failure, to find the rate at which messages are lost for good (each
    # failed step is drained first, so a step starts without the previous backlog);
    # it stops at the first step that lost messages.
    ladder: list[dict[str, Any]] = []
    best = 0.0
    failed_at: int | None = None
    for i, rate in enumerate(args.rates, start=1):
        if failed_at is not None and i - failed_at > args.overload_steps:
            break
        count = max(1, int(rate * args.step_seconds))
        start_ns = _now()
        await _publish_at(pub, i, rate, count)
        published_ns = _now()
        await _wait_delivered(tally, i, count * members, quiet=1.0, cap=args.step_seconds + 10)
        got = tally.per_step.get(i, 0)
        last_ns = tally.step_last_ns.get(i, published_ns)
        lag = max(0.0, (last_ns - published_ns) / 1e9)
        passed = got >= count * members and lag <= args.max_lag and not tally.disconnects
        entry: dict[str, Any] = {
            "rate": rate,
            "sent": count,
            "delivered": got,
            "expected": count * members,
            "lag_s": lag,
            "passed": passed,
            "achieved_per_s": got / max((last_ns - start_ns) / 1e9, 1e-9),
            "hist": _summary(tally.hist_for(i)),
        }
        ladder.append(entry)
        if passed:
            if failed_at is None:
                best = rate
            continue
        if failed_at is None:
            failed_at = i
        if got < count * members and args.drain_seconds > 0:
            # Late or lost? Give the backlog time to arrive: what never arrives
            # was dropped.
            await _wait_delivered(tally, i, count * members, quiet=2.0, cap=args.drain_seconds)
        entry["eventually_delivered"] = tally.per_step.get(i, 0)
        # Deliveries still coming in when the drain's cap ran out: late beyond what the
        # client waits for, not known to be lost; the backlog would spill into the
        # next step, so the ladder ends here.
        entry["still_arriving"] = (
            entry["eventually_delivered"] < count * members
            and (_now() - tally.step_last_ns.get(i, 0)) / 1e9 < 1.0
        )
        if (
            entry["eventually_delivered"] < count * members
            or entry["still_arriving"]
            or tally.disconnects
        ):
            break
    return {"latency": latency, "ladder": ladder, "best_rate": best}


async def _many(
    args: argparse.Namespace,
    tally: _Tally,
    pubs: list[tuple[WSTransport, _Publisher]],
    members: int,
) -> dict[str, Any]:
    expected = len(pubs) * args.messages * members

    async def burst(transport: WSTransport, listener: _Publisher) -> None:
        for seq in range(args.messages):
            if listener.paused:
                await asyncio.wait_for(listener.resumed.wait(), 30)
            transport.send(WSMsgType.TEXT, f"1:{_now()}:{seq}".encode())
            if seq % 50 == 49:
                await asyncio.sleep(0)  # let the other publishers interleave

    t0 = _now()
    await asyncio.gather(*(burst(t, lis) for t, lis in pubs))
    await _wait_delivered(tally, 1, expected, quiet=2.0, cap=60.0)
    # Up to the last delivery, not the end of the quiet wait that detects drops.
    elapsed = max(tally.last_ns - t0, 1) / 1e9
    return {
        "delivered": tally.per_step.get(1, 0),
        "expected": expected,
        "seconds": elapsed,
        "hist": _summary(tally.hist_for(1)),
    }


async def _main(args: argparse.Namespace) -> None:
    raise_nofile()
    tally = _Tally()
    bases = [u.rstrip("/") for u in args.url.split(",")]
    member_conns, member_failed = await _open(
        [f"{b}/ws/group/{args.group}/" for b in bases], lambda: _Member(tally), args.members, 50
    )
    pub_conns, pub_failed = await _open(
        [f"{b}/ws/pub/{args.group}/" for b in bases], _Publisher, args.publishers, 10
    )
    emit(
        "READY",
        {
            "members": len(member_conns),
            "publishers": len(pub_conns),
            "failed": member_failed + pub_failed,
        },
    )
    await read_command("GO", wait=args.deadline)
    if not pub_conns:
        raise SystemExit("no publisher connected")
    if args.mode == "broadcast":
        result = await _broadcast(args, tally, pub_conns[0][0], len(member_conns))
    else:
        result = await _many(args, tally, pub_conns, len(member_conns))
    result["disconnects"] = tally.disconnects
    result["members"] = len(member_conns)
    emit("DONE", result)
    for transport, _ in member_conns + pub_conns:
        transport.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["broadcast", "many"])
    parser.add_argument(
        "--url",
        required=True,
        help="ws://127.0.0.1:PORT, or several comma-separated: connections are spread "
        "round-robin over them (the first gets the first publisher)",
    )
    parser.add_argument("--group", default="bench")
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--step-seconds", type=float, default=2)
    parser.add_argument("--max-lag", type=float, default=1.0)
    parser.add_argument(
        "--overload-steps",
        type=int,
        default=0,
        help="steps to go on for after the first failed one, until one loses messages",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=0.0,
        help="after the failed step, wait up to this long for its late deliveries",
    )
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[5, 10, 20, 50, 100, 200, 500, 1000],
    )
    parser.add_argument("--deadline", type=float, default=300.0)
    args = parser.parse_args()
    use_uvloop()
    asyncio.run(asyncio.wait_for(_main(args), args.deadline))


if __name__ == "__main__":
    main()
