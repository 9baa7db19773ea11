"""The benchmark venv and the facts every report records (versions, machine).

The venv is separate from the development one (``.venv``) so the peers' packages
(uvicorn, daphne, channels, picows) never leak into bayou's test environment.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "BENCH_DIR",
    "REPO",
    "VENV",
    "ensure_venv",
    "ensure_wrk",
    "machine_facts",
    "venv_python",
    "versions",
]

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
VENV = REPO / ".venv-bench"

# Pinned where the issue pins them (the Django-layer peers); the servers float so a
# report always compares against the current release.
REQUIREMENTS = [
    f"-e{REPO}",
    "uvicorn",
    "httptools",
    "websockets",
    "uvloop",
    "daphne",
    "channels==4.3.2",
    "channels_redis==4.3.0",
    "picows",
]
_STAMP = VENV / ".bench-requirements"


def venv_python() -> str:
    return str(VENV / "bin" / "python")


def _requirements_hash() -> str:
    return hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()


def ensure_venv(log: Callable[[str], None] = print) -> None:
    """Create ``.venv-bench`` and install the requirements unless the stamp says it's current."""
    if _STAMP.exists() and _STAMP.read_text().strip() == _requirements_hash():
        return
    if not (VENV / "bin" / "python").exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log("installing benchmark requirements into .venv-bench (one-off)")
    pip = [venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    _STAMP.write_text(_requirements_hash() + "\n")


def ensure_wrk() -> str:
    """Return the path of ``wrk`` or exit with the command that installs it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed; on Debian/Ubuntu: sudo apt-get install -y wrk")
    return path


_VERSION_SNIPPET = r"""
import importlib.metadata as m, json
out = {}
for name in ("bayou", "uvicorn", "httptools", "websockets", "uvloop", "daphne", "twisted",
             "channels", "channels_redis", "redis", "msgpack", "picows", "django"):
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        out[name] = "-"
print(json.dumps(out))
"""


def versions() -> dict[str, str]:
    """Versions as installed in the bench venv, plus python, bayou's git rev and wrk."""
    import json

    out = subprocess.run(
        [venv_python(), "-c", _VERSION_SNIPPET], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, str] = {"python": _venv_python_version()}
    result.update(json.loads(out))
    # "redis" is the redis-py client; the server it talks to is listed separately.
    result["redis-py"] = result.pop("redis", "-")
    result["msgpack"] = result.pop("msgpack", "-")
    result["redis-server"] = _redis_server_version()
    result["bayou git rev"] = _git_rev()
    wrk = shutil.which("wrk")
    if wrk:
        proc = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        result["wrk"] = (proc.stdout or proc.stderr).split("[")[0].replace("wrk", "").strip()
    return result


def _redis_server_version() -> str:
    path = shutil.which("redis-server")
    if path is None:
        return "-"
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    version = [w[2:] for w in out.split() if w.startswith("v=")]
    return version[0] if version else (out.strip() or "?")


def _venv_python_version() -> str:
    return subprocess.run(
        [venv_python(), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "bayou"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def machine_facts() -> dict[str, str]:
    """What the numbers depend on: cores, CPU model, kernel, memory."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "load average (1/5/15 min) at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
