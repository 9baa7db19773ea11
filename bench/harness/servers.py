"""How each server under test is started (command line for an app and a port).

Every server gets the same application module and the settings its own docs
recommend for speed; access logs are off for all of them so no one pays for
writing lines the others don't write.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.env import REPO, venv_python

__all__ = ["SERVERS", "bayou_unavailable", "server_argv"]


def _bayou(app: str, port: int) -> list[str]:
    return [
        venv_python(), "-m", "bayou.server", app,
        "--bind", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--no-access-log",
    ]  # fmt: skip


def _uvicorn(app: str, port: int) -> list[str]:
    # The fastest stock uvicorn: httptools + the websockets implementation on uvloop.
    return [
        venv_python(), "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--http", "httptools", "--ws", "websockets", "--loop", "uvloop",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def _daphne(app: str, port: int) -> list[str]:
    return [venv_python(), "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]


def _picows(app: str, port: int) -> list[str]:
    # Not ASGI: ignores ``app`` and echoes in the protocol callback itself.
    return [venv_python(), "-m", "benchapps.picows_echo", "--port", str(port)]


SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "bayou": _bayou,
    "uvicorn": _uvicorn,
    "daphne": _daphne,
    "picows": _picows,
}


def server_argv(server: str, app: str) -> Callable[[int], Sequence[str]]:
    build = SERVERS[server]
    return lambda port: build(app, port)


_bayou_checked: list[str | None] = []


def bayou_unavailable() -> str | None:
    """Why ``python -m bayou.server`` can't start (still being written), or None."""
    if _bayou_checked:
        return _bayou_checked[0]
    reason: str | None = None
    if not (REPO / "bayou" / "server" / "__main__.py").exists():
        reason = "bayou/server/__main__.py does not exist yet"
    else:
        proc = subprocess.run(
            [venv_python(), "-m", "bayou.server", "--help"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=60,
        )
        if proc.returncode != 0:
            reason = (
                "python -m bayou.server --help failed: "
                + (proc.stderr.strip().splitlines() or ["?"])[-1]
            )
    _bayou_checked.append(reason)
    return reason
