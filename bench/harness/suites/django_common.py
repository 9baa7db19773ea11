"""Contestants for the Django-layer suites, and the group-client driver and metrics the
in-memory and Redis group suites share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.clientproc import ClientProc
from harness.env import BENCH_DIR
from harness.model import Contestant, Context
from harness.procs import RunningServer, cpu_seconds
from harness.servers import bayou_unavailable
from harness.stats import merge_histograms, percentile_ms
from harness.suites.common import RAW_APP

__all__ = [
    "GroupRun",
    "bayou_django_unavailable",
    "broadcast_common_metrics",
    "burst_metrics",
    "django_contestants",
    "drive_group_client",
    "run_group_client",
]

BAYOU_APP = "django_bayou.asgi:application"
CHANNELS_APP = "django_channels.asgi:application"

_checked: list[str | None] = []


def bayou_django_unavailable(python: str) -> str | None:
    """Why the bayou Django project can't be imported yet (consumers/layers unfinished), or None."""
    if not _checked:
        proc = subprocess.run(
            [python, "-c", "import django_bayou.asgi"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = proc.stderr.strip().splitlines()
        _checked.append(None if proc.returncode == 0 else f"django_bayou.asgi: {lines[-1:]}")
    return _checked[0]


def django_contestants(ctx: Context, *, raw_bayou: bool) -> list[Contestant]:
    out: list[Contestant] = []
    reason = bayou_unavailable() or bayou_django_unavailable(ctx.python)
    if reason is None:
        out.append(Contestant("bayou", "bayou", BAYOU_APP))
    else:
        ctx.log(f"  (bayou skipped: {reason})")
    out += [
        Contestant("channels@uvicorn", "uvicorn", CHANNELS_APP),
        Contestant("channels@daphne", "daphne", CHANNELS_APP),
    ]
    if raw_bayou and bayou_unavailable() is None:
        out.append(Contestant("raw@bayou", "bayou", RAW_APP))
    return out


@dataclass
class GroupRun:
    done: dict[str, Any]
    server_cpu: float  # seconds, every server process
    redis_cpu: float  # seconds (0 without Redis)
    wall: float


def drive_group_client(
    ctx: Context,
    servers: Sequence[RunningServer],
    argv_tail: list[str],
    timeout: float,
    *,
    slack: float,
    redis_cpu: Callable[[], float] = lambda: 0.0,
) -> GroupRun:
    """Run clients.groups with connections spread over ``servers``; CPU and wall time
    are taken from GO to DONE (connection setup excluded). ``slack``: seconds the
    client may outlive ``timeout`` before its own deadline stops it."""
    urls = ",".join(f"ws://127.0.0.1:{s.port}" for s in servers)
    client = ClientProc(
        [ctx.python, "-m", "clients.groups", *argv_tail, "--url", urls,
         "--deadline", str(timeout + slack)],
        ctx.cpus,
    )  # fmt: skip
    try:
        ready = client.expect("READY", timeout=120)
        if ready["failed"]:
            ctx.log(f"     {ready['failed']} connection(s) failed to open")
        cpu0 = sum(cpu_seconds(s.pid) for s in servers)
        rcpu0 = redis_cpu()
        t0 = time.monotonic()
        client.send("GO")
        done = client.expect("DONE", timeout=timeout)
        cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu0
        rcpu = redis_cpu() - rcpu0
        wall = time.monotonic() - t0
    finally:
        client.finish()
    done["failed"] = ready["failed"]
    return GroupRun(done, cpu, rcpu, wall)


def run_group_client(
    ctx: Context, srv: RunningServer, argv_tail: list[str], timeout: float
) -> tuple[dict[str, Any], float, float]:
    """Run clients.groups against ``srv``; return (result, server CPU seconds, wall seconds)."""
    run = drive_group_client(ctx, [srv], argv_tail, timeout, slack=60)
    return run.done, run.server_cpu, run.wall


def broadcast_common_metrics(done: dict[str, Any]) -> dict[str, float | None]:
    """What both broadcast suites read alike from a ``clients.groups broadcast`` DONE
    report: latency-phase percentiles, the peak lossless delivery rate, errors."""
    lat = merge_histograms([done["latency"]["hist"]])
    return {
        # Deliveries/s actually achieved by the best step that lost nothing (it may
        # have been late): throughput of a server that buffers instead of dropping.
        "peak_lossless": max(
            (s["achieved_per_s"] for s in done["ladder"] if s["delivered"] == s["expected"]),
            default=None,
        ),
        "lat_p50_ms": percentile_ms(lat, 0.5),
        "lat_p99_ms": percentile_ms(lat, 0.99),
        # Latency-phase messages that never arrived count as errors.
        "errors": float(
            done["failed"] + done["disconnects"]
            + done["latency"]["expected"] - done["latency"]["delivered"]
        ),
    }  # fmt: skip


def burst_metrics(done: dict[str, Any], server_cpu: float) -> dict[str, float | None]:
    """Metrics of a ``clients.groups many`` DONE report; ``server_cpu`` in seconds."""
    delivered, expected = done["delivered"], done["expected"]
    return {
        "delivered": float(delivered),
        "expected": float(expected),
        "dropped_pct": 100.0 * (expected - delivered) / expected if expected else None,
        "deliveries_per_s": delivered / done["seconds"] if done["seconds"] else None,
        "p99_ms": percentile_ms(merge_histograms([done["hist"]]), 0.99),
        "cpu_us": server_cpu / delivered * 1e6 if delivered else None,
        "errors": float(done["failed"] + done["disconnects"]),
    }
