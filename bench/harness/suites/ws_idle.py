"""ws-idle: many idle WebSockets: handshake rate and server memory per connection."""

from __future__ import annotations

import time

from harness.clientproc import ClientProc
from harness.model import Contestant, Context, Metric, Suite, Target
from harness.procs import RunningServer, rss_kib
from harness.suites.common import raw_contestants

__all__ = ["SUITE"]

_WARM_CONNS = 20


def _idle_client(ctx: Context, srv: RunningServer, conns: int) -> ClientProc:
    return ClientProc(
        [
            ctx.python, "-m", "clients.ws_idle", "--url", srv.ws_url,
            "--conns", str(conns), "--deadline", "180",
        ],
        ctx.cpus,
    )  # fmt: skip


def _measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    conns = int(case)
    # Warm-up connections first so lazy imports and first-use allocations are not
    # charged to the per-connection figure.
    warm = _idle_client(ctx, srv, _WARM_CONNS)
    try:
        warm.expect("READY", timeout=60)
        warm.send("CLOSE")
        warm.expect("DONE", timeout=30)
    finally:
        warm.finish()
    time.sleep(1.0)
    rss0 = rss_kib(srv.pid)
    client = _idle_client(ctx, srv, conns)
    try:
        ready = client.expect("READY", timeout=170)
        rss1 = rss_kib(srv.pid)
        client.send("CLOSE")
        client.expect("DONE", timeout=60)
    finally:
        client.finish()
    open_ = ready["open"]
    return {
        "hs_per_s": ready["connected"] / ready["elapsed_s"] if ready["elapsed_s"] else None,
        "rss_kib_per_conn": (rss1 - rss0) / open_ if open_ else None,
        "rss_mib": rss1 / 1024,
        "errors": float(conns - open_),
    }


SUITE = Suite(
    name="ws-idle",
    title="Idle WebSockets (raw ASGI)",
    method=(
        "After 20 warm-up connections are opened and closed, one picows client opens 5000 "
        "WebSockets (quick: 1000), 50 handshakes in flight at a time, RLIMIT_NOFILE raised in "
        "client and server. Handshakes/s = connections ÷ time to open them all. After 1 s of "
        "idleness the server's VmRSS (`/proc/<pid>/status`) is read: RSS per connection = "
        "(RSS with the connections open - RSS before) ÷ connections open."
    ),
    metrics=[
        Metric("hs_per_s", "handshakes/s", True),
        Metric("rss_kib_per_conn", "RSS KiB/conn", False, "{:.1f}"),
        Metric("rss_mib", "RSS MiB total", False, "{:.1f}"),
        Metric("errors", "failed", False, compare=False),
    ],
    headline="rss_kib_per_conn",
    case_label="conns",
    cases=lambda ctx: ["1000"] if ctx.quick else ["5000"],
    contestants=lambda ctx: raw_contestants(ctx, picows=False),
    measure=_measure,
    targets=[
        Target(
            "RSS per idle WebSocket ≤ 0.5x daphne's",
            "rss_kib_per_conn",
            "bayou",
            "daphne",
            "<=",
            0.5,
        )
    ],
)
