"""Runs inside the kosoku venv (not bayou's): drive the Autobahn cases, print JSON lines.

Usage: runner.py URL OUTDIR CONCURRENCY [--include CASE]... [--exclude CASE]...
One JSON object per case on stdout: id, behavior, behavior_close, passed, result.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from kosoku import FailureError, run_fuzzingclient
from kosoku._report import write_reports


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("outdir")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("--include", action="append")
    parser.add_argument("--exclude", action="append")
    args = parser.parse_args()
    try:
        results = await run_fuzzingclient(
            args.url, args.include, args.exclude, concurrency=args.concurrency
        )
    except FailureError as failure:
        results = failure.results
    if results:
        write_reports(results, args.outdir)
    for r in results:
        line = {
            "id": r.case_id,
            "behavior": r.behavior.value,
            "behavior_close": r.behavior_close.value,
            "passed": r.passed,
            "result": "" if r.passed else f"{r.result} / {r.result_close}",
        }
        print(json.dumps(line), flush=True)


asyncio.run(main())
