"""ws-echo: round trips per second through a raw ASGI WebSocket echo app."""

from __future__ import annotations

import time

from harness.clientproc import ClientProc
from harness.model import Contestant, Context, Metric, Suite, Target
from harness.procs import RunningServer, cpu_seconds
from harness.stats import merge_histograms, percentile_ms
from harness.suites.common import raw_contestants

__all__ = ["SUITE", "run_echo_load"]


def _cases(ctx: Context) -> list[str]:
    return ["1", "100"] if ctx.quick else ["1", "100", "1000"]


def run_echo_load(
    ctx: Context, srv: RunningServer, url: str, conns: int, seconds: float
) -> dict[str, float | None]:
    """Drive ``conns`` echo loops split over the client processes; measure in one window."""
    procs = max(1, min(ctx.client_procs, conns))
    shares = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    clients = [
        ClientProc(
            [
                ctx.python,
                "-m",
                "clients.ws_echo",
                "--url",
                url,
                "--conns",
                str(n),
                "--deadline",
                str(seconds + 90),
            ],
            ctx.cpus,
        )
        for n in shares
    ]
    try:
        ready = [c.expect("READY", timeout=60) for c in clients]
        connected = sum(r["connected"] for r in ready)
        warmup = 0.5 if ctx.quick else 1.0
        start = time.monotonic_ns() + int(warmup * 1e9)
        end = start + int(seconds * 1e9)
        for c in clients:
            c.send("GO", {"start_ns": start, "end_ns": end})
        time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
        cpu0 = cpu_seconds(srv.pid)
        time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
        cpu = cpu_seconds(srv.pid) - cpu0
        done = [c.expect("DONE", timeout=seconds + 30) for c in clients]
    finally:
        for c in clients:
            c.finish()
    trips = sum(d["round_trips"] for d in done)
    hist = merge_histograms(d["hist"] for d in done)
    client_busy = max(d["client_cpu_s"] / d["client_wall_s"] for d in done)
    return {
        "rtps": trips / seconds,
        "p50_ms": percentile_ms(hist, 0.50),
        "p99_ms": percentile_ms(hist, 0.99),
        "cpu_us": cpu / trips * 1e6 if trips else None,
        "cpu_pct": cpu / seconds * 100,
        "client_pct": client_busy * 100,
        "errors": float(sum(d["errors"] for d in done) + (conns - connected)),
    }


def _measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    return run_echo_load(ctx, srv, srv.ws_url, int(case), 3.0 if ctx.quick else 10.0)


SUITE = Suite(
    name="ws-echo",
    title="WebSocket echo (raw ASGI)",
    method=(
        "A raw ASGI app accepts every WebSocket and sends each message back; the bare picows "
        "server (no ASGI) is the floor. Each client connection loops *send 32-byte text → wait "
        "for the echo → send*, bounded by a 10 s window (quick: 3 s) after a 1 s warm-up "
        "(quick: 0.5 s) and by 5 M round trips per connection. The load client is picows on "
        "uvloop in 1-2 processes pinned away from the server's CPU; `client CPU %` shows "
        "whether it was the limit (≈100 % means the numbers are a lower bound for the server). "
        "Latency percentiles are taken over every 4th round trip (2 %-wide histogram buckets). "
        "Server CPU per round trip = (utime+stime of the server pid from `/proc/<pid>/stat`) "
        "over the window ÷ round trips in the window: it does not depend on the client's speed."
    ),
    metrics=[
        Metric("rtps", "round trips/s", True),
        Metric("p50_ms", "p50 ms", False, "{:.3f}"),
        Metric("p99_ms", "p99 ms", False, "{:.3f}"),
        Metric("cpu_us", "server CPU µs/rt", False, "{:.1f}"),
        Metric("cpu_pct", "server CPU %", True, "{:.0f}", compare=False),
        Metric("client_pct", "client CPU %", True, "{:.0f}", compare=False),
        Metric("errors", "errors", False, compare=False),
    ],
    headline="rtps",
    case_label="conns",
    cases=_cases,
    contestants=lambda ctx: raw_contestants(ctx, picows=True),
    measure=_measure,
    targets=[
        Target("echo round trips/s ≥ 3x uvicorn", "rtps", "bayou", "uvicorn", ">=", 3.0),
        Target("echo round trips/s within 3x of picows", "rtps", "bayou", "picows", ">=", 1 / 3),
        Target(
            "server CPU per round trip ≤ ⅓ of uvicorn's", "cpu_us", "bayou", "uvicorn", "<=", 1 / 3
        ),
    ],
)
