"""Load-client subprocesses driven over stdio lines, every read bounded by a timeout."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from harness.env import BENCH_DIR
from harness.procs import CpuPlan

__all__ = ["ClientFailed", "ClientProc"]


class ClientFailed(RuntimeError):
    pass


class ClientProc:
    """A client started pinned to the client CPUs; ``expect(keyword)`` reads its next line."""

    def __init__(self, argv: Sequence[str], cpus: CpuPlan) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            cwd=BENCH_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=cpus.client_preexec(),
        )
        self._buf = b""

    def expect(self, keyword: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientFailed(f"no {keyword} from client within {timeout:.0f}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise ClientFailed(f"client exited before {keyword}: {self._stderr()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        word, _, rest = line.decode().partition(" ")
        if word != keyword:
            raise ClientFailed(f"expected {keyword}, client said {line[:200]!r}")
        result: dict[str, Any] = json.loads(rest) if rest else {}
        return result

    def send(self, keyword: str, payload: dict[str, Any] | None = None) -> None:
        assert self.proc.stdin is not None
        text = keyword + (" " + json.dumps(payload) if payload else "") + "\n"
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def _stderr(self) -> str:
        assert self.proc.stderr is not None
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "(still running)"
        # The exception is at the end; the head is traceback boilerplate.
        lines = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def finish(self, timeout: float = 10.0) -> None:
        """Wait for exit (bounded); kill if it overstays."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()
