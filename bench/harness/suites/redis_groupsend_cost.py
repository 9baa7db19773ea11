"""redis-groupsend-cost: what one group_send costs in Redis commands and time, 1 vs 1000 members."""

from __future__ import annotations

import statistics
import time

from harness.clientproc import ClientProc
from harness.model import Contestant, Context, Metric, Suite
from harness.procs import CpuPlan
from harness.redisserver import RespClient, running_redis
from harness.suites.redis_common import (
    BAYOU_LIST,
    LAYER_ENV,
    REDIS_PEERS,
    redis_contestants,
    redis_suite_unavailable,
)

__all__ = ["SUITE"]


def _counts(ctx: Context) -> tuple[int, int]:
    """(warm-up calls, measured calls)."""
    return (10, 100) if ctx.quick else (20, 500)


def _measure(ctx: Context, contestant: Contestant, case: str) -> dict[str, float | None]:
    members = int(case)
    backend = contestant.env[LAYER_ENV]
    warmup, calls = _counts(ctx)
    # Two member processes (the first gets the odd one): 1 → 1 + 0, 1000 → 500 + 500.
    split = [n for n in (members - members // 2, members // 2) if n]
    procs: list[ClientProc] = []
    members_cpus = CpuPlan(server=ctx.cpus.clients, clients=ctx.cpus.server)
    with running_redis(ctx.cpus) as redis:
        common = ["--backend", backend, "--redis", redis.url, "--deadline", "120"]
        admin = RespClient(redis.port)
        try:
            for n in split:
                argv = [ctx.python, "-m", "clients.layer_cost", "member", *common,
                        "--channels", str(n), "--expect", str(warmup + calls)]  # fmt: skip
                # Members play the receiving server processes: on the server CPU, so
                # their work does not compete with the sender whose calls are timed.
                procs.append(ClientProc(argv, members_cpus))
            for m in procs:
                m.expect("READY", timeout=120)
            sender = ClientProc(
                [ctx.python, "-m", "clients.layer_cost", "send", *common,
                 "--warmup", str(warmup), "--calls", str(calls)],
                ctx.cpus,
            )  # fmt: skip
            procs.append(sender)
            sender.expect("READY", timeout=60)
            time.sleep(0.5)  # let the warm-up deliveries drain before counting starts
            admin.call("CONFIG", "RESETSTAT")
            rcpu0 = redis.cpu_seconds()
            sender.send("GO")
            done = sender.expect("DONE", timeout=120)
            received = expected = 0
            for m in procs[:-1]:
                got = m.expect("DONE", timeout=150)
                received += got["received"]
                expected += got["expected"]
            by_command = admin.command_calls()
            rcpu = redis.cpu_seconds() - rcpu0
            for m in procs[:-1]:
                m.send("STOP")
        finally:
            admin.close()
            for proc in procs:
                proc.finish(timeout=10)
    top = sorted(by_command.items(), key=lambda kv: -kv[1])[:8]
    ctx.log(
        "     Redis commands during the calls: "
        + ", ".join(f"{name} {n / calls:.1f}" for name, n in top)
        + " (per call)"
    )
    walls_us = [ns / 1e3 for ns in done["wall_ns"]]
    walls_sorted = sorted(walls_us)
    return {
        "redis_cmds": sum(by_command.values()) / calls,
        "client_cmds": done["client_commands"] / calls,
        "wall_us": statistics.fmean(walls_us),
        "wall_p50_us": statistics.median(walls_us),
        "wall_max_us": walls_sorted[-1],
        "redis_cpu_us": rcpu / calls * 1e6,
        "delivered_pct": 100.0 * received / expected if expected else None,
        "errors": float(expected - received),
    }


SUITE = Suite(
    name="redis-groupsend-cost",
    title="Cost of one group_send over Redis: 1 vs 1000 members",
    method=(
        "No WebSocket server: the layers are driven directly (`bench/clients/layer_cost.py`). "
        "Per measurement a private `redis-server` is started; the group's members are real "
        "channels from `new_channel()` + `group_add` in two member processes, one layer "
        "instance each (1 member: one process with 1; 1000: 500 + 500), and they keep "
        "receiving. A third process (its own layer instance, not a member) makes 10 "
        "warm-up `group_send` calls (quick; full: 20), then, after `CONFIG RESETSTAT`, 100 "
        "(full: 500) sequential calls with a 100-byte message. *Redis commands/call*: "
        "`INFO commandstats` calls delta ÷ calls, counted until every member received every "
        "message — it includes the commands Redis runs inside Lua scripts and the receivers' "
        "commands that fetch the deliveries, i.e. all Redis work per group message (run.py's "
        "own INFO/CONFIG left out). *Sender commands/call*: commands the sending process "
        "handed to redis-py (pipelined ones counted singly). Wall time per call in the "
        "sender (mean, median, max); Redis CPU µs per call over the same window (all "
        "redis-server threads, `/proc/<pid>/task/*/schedstat`). Layer CONFIG is `hosts` "
        "only. The member processes are pinned to the server CPU; the sender and Redis to "
        "the other."
    ),
    metrics=[
        Metric("redis_cmds", "Redis commands/call", False, "{:,.1f}"),
        Metric("client_cmds", "sender commands/call", False, "{:,.1f}"),
        Metric("wall_us", "µs/call (mean)", False, "{:,.0f}"),
        Metric("wall_p50_us", "µs/call (median)", False, "{:,.0f}"),
        Metric("wall_max_us", "µs/call (max)", False, "{:,.0f}", compare=False),
        Metric("redis_cpu_us", "Redis CPU µs/call", False, "{:,.1f}"),
        Metric("delivered_pct", "delivered %", True, "{:.1f}", compare=False),
        Metric("errors", "undelivered", False, compare=False),
    ],
    headline="redis_cmds",
    case_label="members",
    cases=lambda ctx: ["1", "1000"],
    contestants=redis_contestants,
    run=_measure,
    subject=BAYOU_LIST,
    peers=REDIS_PEERS,
    available=redis_suite_unavailable,
)
