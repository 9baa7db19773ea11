"""Run the Autobahn TestSuite cases (via kosoku) against bayou's WebSocket server.

    .venv/bin/python scripts/autobahn.py                 # all 517 cases
    .venv/bin/python scripts/autobahn.py -i '1.*' -i 5.*  # a selection
    .venv/bin/python scripts/autobahn.py -x '9.*' -x '12.*' -x '13.*'   # skip the slow groups

kosoku lives in its own venv (``.venv-autobahn``, created on first use) so the
test tool never leaks into bayou's environment. An echo application is served
in-process on a free 127.0.0.1 port with keepalive pings disabled and message
limits raised to the suite's 16 MiB maximum. Prints a summary line of the
verdict counts and exits 1 when any case FAILED (or errored), 0 otherwise.
The HTML/JSON report goes to ``reports/autobahn/``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayou.protocol.limits import Limits  # noqa: E402
from bayou.server.config import Config  # noqa: E402

VENV = ROOT / ".venv-autobahn"
RUNNER = ROOT / "scripts" / "autobahn" / "runner.py"
MiB = 1024 * 1024


def ensure_venv() -> Path:
    """The kosoku venv's python, creating the venv and installing kosoku if needed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
    check = subprocess.run([str(python), "-c", "import kosoku"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "kosoku"], check=True)
    return python


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo every message back, text as text and binary as binary."""
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            return


async def start_server(config: Config) -> tuple[str, Any]:
    """Start bayou; returns (ws url, stop coroutine function)."""
    from bayou.server.server import Server

    server = Server(config)
    await server.startup()
    host, port = server.bound_addresses[0]
    return f"ws://{host}:{port}", server.shutdown


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--include", action="append", help="case id or glob (repeatable)")
    parser.add_argument("-x", "--exclude", action="append", help="case id or glob to skip")
    parser.add_argument("-p", "--parallelism", type=int, default=2)
    parser.add_argument("-o", "--outdir", default=str(ROOT / "reports" / "autobahn"))
    parser.add_argument("-v", "--verbose", action="store_true", help="list every failed case")
    args = parser.parse_args()

    python = ensure_venv()
    config = Config(
        app=echo,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        access_log=False,
        ping_interval=None,
        websocket_connect_timeout=30.0,
        limits=Limits(ws_max_message_size=32 * MiB, ws_max_frame_size=32 * MiB),
        # Compress every message. bayou sends messages under 64 bytes
        # uncompressed by default (RFC 7692 allows it per message), but the
        # Python 3 port of the 12.x/13.x case code in kosoku then crashes
        # ("Strings must be encoded before hashing") on the 16-byte cases
        # x.x.1 and reports ERROR; the protocol exchange itself is valid.
        websocket_deflate_min_size=0,
    )
    url, stop = await start_server(config)
    cmd = [str(python), str(RUNNER), url, args.outdir, str(args.parallelism)]
    for case in args.include or ():
        cmd += ["--include", case]
    for case in args.exclude or ():
        cmd += ["--exclude", case]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    counts: collections.Counter[str] = collections.Counter()
    failed: list[dict[str, Any]] = []
    total = 0
    try:
        async for raw in proc.stdout:
            line = json.loads(raw)
            total += 1
            counts[line["behavior"]] += 1
            if not line["passed"]:
                failed.append(line)
        await proc.wait()
    finally:
        await stop()
    for line in failed if args.verbose else failed[:30]:
        print(f"FAILED {line['id']}: {line['behavior']}/{line['behavior_close']}: {line['result']}")
    order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"]
    summary = ", ".join(f"{name} {counts.get(name, 0)}" for name in order)
    print(f"autobahn: {total} cases: {summary}; not passed (incl. close verdicts): {len(failed)}")
    if proc.returncode not in (0, None) and total == 0:
        print("autobahn: the kosoku runner failed", file=sys.stderr)
        return 2
    return 1 if failed or counts.get("FAILED") or counts.get("ERROR") else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(asyncio.run(main()))
