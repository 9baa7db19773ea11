"""http: wrk against a raw ASGI hello-world app."""

from __future__ import annotations

import re
import subprocess

from harness.model import Contestant, Context, Metric, Suite, Target
from harness.procs import RunningServer, cpu_seconds
from harness.suites.common import raw_contestants

__all__ = ["SUITE"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _latency_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unparsed wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, float | None]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if not (rps and p99 and total):
        raise ValueError(f"unparsed wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "p99_ms": _latency_ms(p99.group(1)),
        "requests": float(total.group(1)),
        "errors": float(errors),
    }


def _wrk(ctx: Context, url: str, seconds: int, latency: bool) -> str:
    assert ctx.wrk is not None
    argv = [ctx.wrk, "-t1", "-c50", f"-d{seconds}s", "--timeout", "5s"]
    if latency:
        argv.append("--latency")
    proc = subprocess.run(
        [*argv, url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=ctx.cpus.client_preexec(),
        check=True,
    )
    return proc.stdout


def _measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    seconds = 3 if ctx.quick else 10
    _wrk(ctx, srv.http_url, 1, latency=False)  # warm-up: imports, caches, JIT-free but lazy paths
    cpu0 = cpu_seconds(srv.pid)
    result = parse_wrk(_wrk(ctx, srv.http_url, seconds, latency=True))
    cpu = cpu_seconds(srv.pid) - cpu0
    requests = result.pop("requests") or 0.0
    result["cpu_us"] = cpu / requests * 1e6 if requests else None
    result["cpu_pct"] = cpu / seconds * 100
    return result


SUITE = Suite(
    name="http",
    title="HTTP hello world (raw ASGI)",
    method=(
        "A raw ASGI app answers `GET /` with a 13-byte `text/plain` body; the same module "
        "runs on every server. `wrk -t1 -c50 -d10s --latency` (quick: `-d3s`) after a 1 s "
        "warm-up; wrk pinned to the client CPU(s), the server to its own CPU. "
        "Server CPU per request = (utime+stime of the server pid from `/proc/<pid>/stat` "
        "after - before) ÷ requests completed."
    ),
    metrics=[
        Metric("rps", "req/s", True),
        Metric("p99_ms", "p99 ms", False, "{:.2f}"),
        Metric("cpu_us", "server CPU µs/req", False, "{:.1f}"),
        Metric("cpu_pct", "server CPU %", True, "{:.0f}", compare=False),
        Metric("errors", "errors", False, compare=False),
    ],
    headline="rps",
    case_label="load",
    cases=lambda ctx: ["50 conns"],
    contestants=lambda ctx: raw_contestants(ctx, picows=False),
    measure=_measure,
    targets=[Target("HTTP req/s ≥ 1.2x uvicorn", "rps", "bayou", "uvicorn", ">=", 1.2)],
)
