#!/usr/bin/env python3
"""Side-by-side benchmarks of bayou against uvicorn, daphne (and picows / channels).

    python3 bench/run.py [--quick] [--rounds N] [--only a,b] [suite ...]

Suites: http, ws-echo, ws-idle (default), consumer-echo, broadcast, many-publishers
(the Django-layer ones; ``django`` selects those three), redis-broadcast,
redis-groupsend-cost, redis-many-publishers (``redis`` selects those three; they need
``redis-server`` and start a private one per measurement); ``all`` runs everything.
Creates/updates /work/main/.venv-bench on first use; needs ``wrk`` for ``http``.
Writes bench/results/<date>-<suite>[-quick].md and refreshes docs/benchmarks.md.
Stdlib only: servers and load clients run in the bench venv.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import env
from harness.clientproc import ClientFailed
from harness.model import Contestant, Context, Suite, SuiteResult
from harness.procs import CpuPlan, ServerFailed, running_server
from harness.redisserver import RedisFailed
from harness.report import render, result_path, update_docs
from harness.servers import server_argv
from harness.suites import DJANGO_SUITES, REDIS_SUITES, SERVER_SUITES, SUITES


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _select(names: list[str]) -> list[Suite]:
    if not names:
        return list(SERVER_SUITES)
    out: list[Suite] = []
    for name in names:
        if name == "all":
            out += SERVER_SUITES + DJANGO_SUITES + REDIS_SUITES
        elif name == "django":
            out += DJANGO_SUITES
        elif name == "redis":
            out += REDIS_SUITES
        elif name in SUITES:
            out.append(SUITES[name])
        else:
            sys.exit(f"unknown suite {name!r}; known: {', '.join(SUITES)}, django, redis, all")
    unique: dict[str, Suite] = {}
    for suite in out:
        unique.setdefault(suite.name, suite)
    return list(unique.values())


def _measure_one(suite: Suite, ctx: Context, c: Contestant, case: str) -> dict[str, float | None]:
    if suite.run is not None:
        return suite.run(ctx, c, case)
    assert suite.measure is not None, f"suite {suite.name} has neither measure nor run"
    with running_server(c.label, server_argv(c.server, c.app), ctx.cpus, c.env) as srv:
        return suite.measure(ctx, srv, c, case)


def run_suite(suite: Suite, ctx: Context, only: set[str] | None) -> SuiteResult | None:
    reason = suite.available()
    if reason:
        _log(f"== {suite.name}: skipped ({reason})")
        return None
    _log(f"== {suite.name}")
    load_start = os.getloadavg()[0]
    contestants = [c for c in suite.contestants(ctx) if only is None or c.label in only]
    cases = suite.cases(ctx)
    result = SuiteResult(
        suite=suite,
        quick=ctx.quick,
        rounds=ctx.rounds,
        started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        contestants=contestants,
        cases=cases,
        machine=env.machine_facts(),
    )
    result.machine["CPU pinning"] = (
        f"server on CPU {sorted(ctx.cpus.server)}, "
        f"load generators on CPU {sorted(ctx.cpus.clients)}"
    )
    result.machine["load client processes"] = str(ctx.client_procs)
    for rnd in range(ctx.rounds):
        # Rotate so that every contestant runs first, second, ... equally often.
        shift = rnd % max(len(contestants), 1)
        order = contestants[shift:] + contestants[:shift]
        for case in cases:
            for c in order:
                _log(f"   round {rnd + 1}/{ctx.rounds} {suite.case_label}={case} {c.label} ...")
                try:
                    sample = _measure_one(suite, ctx, c, case)
                except (
                    ServerFailed,
                    ClientFailed,
                    RedisFailed,
                    OSError,
                    subprocess.SubprocessError,
                    ValueError,
                ) as exc:
                    note = f"round {rnd + 1}, {case}, {c.label}: failed: {exc}".replace("\n", " ")
                    result.notes.append(note[:600])
                    _log("     " + note[:600])
                    continue
                result.samples.setdefault((case, c.label), []).append(sample)
                if sample.get("errors"):
                    result.notes.append(
                        f"round {rnd + 1}, {case}, {c.label}: {sample['errors']:.0f} error(s) "
                        "(failed requests/connections or lost deliveries)"
                    )
                head = sample.get(suite.headline)
                _log(f"     {suite.headline} = {head if head is None else round(head, 3)}")
                time.sleep(0.5)  # let TIME_WAIT sockets and the server's exit settle
    result.versions = env.versions()
    load_end = os.getloadavg()[0]
    result.machine["load average (1 min) at end"] = f"{load_end:.2f}"
    # A run keeps about two CPUs busy itself (server + load); more than that means
    # other work competed for the CPUs.
    busy = max(load_start, load_end)
    if busy > (os.cpu_count() or 1) + 1:
        result.notes.insert(
            0,
            f"The machine was busy (1-min load average up to {busy:.1f} on "
            f"{os.cpu_count()} CPUs): throughput and latency figures are unreliable and "
            "vary between rounds; server CPU per operation and RSS are the robust figures.",
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("suites", nargs="*", help="suite names (default: the server suites)")
    parser.add_argument("--quick", action="store_true", help="short windows, fewer connections")
    parser.add_argument("--rounds", type=int, help="rounds per contestant (default 5; quick 2)")
    parser.add_argument("--only", help="comma-separated contestant labels to run")
    parser.add_argument(
        "--client-procs", type=int, help="load client processes (default: 1 per spare CPU, max 2)"
    )
    parser.add_argument("--no-docs", action="store_true", help="don't refresh docs/benchmarks.md")
    parser.add_argument(
        "--docs-only",
        action="store_true",
        help="only rebuild docs/benchmarks.md from bench/results/ (runs nothing)",
    )
    args = parser.parse_args()
    if args.docs_only:
        update_docs([s.name for s in SERVER_SUITES + DJANGO_SUITES + REDIS_SUITES])
        return

    suites = _select(args.suites)
    env.ensure_venv(_log)
    cpus = CpuPlan.default()
    ctx = Context(
        quick=args.quick,
        rounds=args.rounds or (2 if args.quick else 5),
        cpus=cpus,
        python=env.venv_python(),
        client_procs=args.client_procs or max(1, min(2, len(cpus.clients))),
        log=_log,
        wrk=env.ensure_wrk() if any(s.name == "http" for s in suites) else None,
    )
    only = set(args.only.split(",")) if args.only else None
    for suite in suites:
        result = run_suite(suite, ctx, only)
        if result is None:
            continue
        text = render(result)
        path = result_path(result)
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(text)
        _log(f"   written to {os.path.relpath(path)}")
    if not args.no_docs:
        update_docs([s.name for s in SERVER_SUITES + DJANGO_SUITES + REDIS_SUITES])


if __name__ == "__main__":
    main()
