"""Contestants for the Django-layer suites and the group-client driver they share."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from harness.clientproc import ClientProc
from harness.env import BENCH_DIR
from harness.model import Contestant, Context
from harness.procs import RunningServer, cpu_seconds
from harness.servers import bayou_unavailable

__all__ = ["bayou_django_unavailable", "django_contestants", "run_group_client"]

BAYOU_APP = "django_bayou.asgi:application"
CHANNELS_APP = "django_channels.asgi:application"
RAW_APP = "benchapps.raw:app"

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


def run_group_client(
    ctx: Context, srv: RunningServer, argv_tail: list[str], timeout: float
) -> tuple[dict[str, Any], float, float]:
    """Run clients.groups against ``srv``; return (result, server CPU seconds, wall seconds)."""
    client = ClientProc(
        [ctx.python, "-m", "clients.groups", *argv_tail, "--url", f"ws://127.0.0.1:{srv.port}",
         "--deadline", str(timeout + 60)],
        ctx.cpus,
    )  # fmt: skip
    try:
        ready = client.expect("READY", timeout=120)
        if ready["failed"]:
            ctx.log(f"     {ready['failed']} connection(s) failed to open")
        cpu0 = cpu_seconds(srv.pid)
        t0 = time.monotonic()
        client.send("GO")
        done = client.expect("DONE", timeout=timeout)
        cpu = cpu_seconds(srv.pid) - cpu0
        wall = time.monotonic() - t0
    finally:
        client.finish()
    done["failed"] = ready["failed"]
    return done, cpu, wall
