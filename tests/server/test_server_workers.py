"""--workers and --reload: the supervisor process, through the real command."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from bayou.server.reload import FileWatcher
from tests.support.servers import BayouProcess, bayou_process, fetch_sync
from tests.support.timeouts import scaled

READY = r"Worker process \[(\d+)\] ready"


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (exited, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + scaled(15)
    while time.monotonic() < deadline:  # bounded wait for another process to exit
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def _serving_pid(proc: BayouProcess) -> int:
    pid = json.loads(fetch_sync(proc.url, "/scope").body)["pid"]
    assert isinstance(pid, int)
    return pid


def test_workers_serve_and_a_killed_worker_is_replaced() -> None:
    """--workers 2 starts two worker processes sharing the listener; a worker killed
    with SIGKILL is replaced by a new one; SIGTERM stops everything with exit 0."""
    with bayou_process("tests.apps:app", "--workers", "2") as proc:
        workers = {int(proc.wait_for_line(READY).group(1)) for _ in range(2)}
        assert len(workers) == 2
        assert os.getpid() not in workers
        # Requests are served by the workers, never by the supervisor.
        served = {_serving_pid(proc) for _ in range(10)}
        assert served <= workers

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        proc.wait_for_line(rf"Worker process \[{victim}\] died")
        replacement = int(proc.wait_for_line(READY).group(1))
        assert replacement not in workers
        workers = workers - {victim} | {replacement}
        served = {_serving_pid(proc) for _ in range(10)}
        assert served <= workers

        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert all(_wait_gone(pid) for pid in workers)


def test_workers_stop_when_the_supervisor_dies() -> None:
    """Workers exit by themselves when the supervisor is SIGKILLed (no orphans
    holding the port)."""
    with bayou_process("tests.apps:app", "--workers", "2") as proc:
        workers = [int(proc.wait_for_line(READY).group(1)) for _ in range(2)]
        proc.proc.kill()
        proc.wait()
        assert all(_wait_gone(pid) for pid in workers)


def test_worker_startup_failure_stops_the_supervisor() -> None:
    """A worker whose lifespan startup fails makes the whole command exit with 3
    instead of restarting it forever."""
    with bayou_process("tests.apps:failing_startup_app", "--workers", "2") as proc:
        assert proc.wait() == 3
        assert "database unreachable" in proc.output


APP_SOURCE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""


def test_reload_restarts_on_a_python_file_change(tmp_path: Path) -> None:
    """--reload: editing a watched .py file restarts the server process, which then
    serves the new code on the same address."""
    module = tmp_path / "reloadable.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    with bayou_process(
        "reloadable:app", "--reload", "--reload-dir", str(tmp_path), cwd=tmp_path
    ) as proc:
        first = int(proc.wait_for_line(READY).group(1))
        assert fetch_sync(proc.url, "/").body == b"v1"
        module.write_text(APP_SOURCE.format(version="version-2"))
        proc.wait_for_line(r"Reloading \(reloadable\.py changed\)")
        second = int(proc.wait_for_line(READY).group(1))
        assert second != first
        assert fetch_sync(proc.url, "/").body == b"version-2"


def test_reload_survives_broken_code(tmp_path: Path) -> None:
    """--reload: a change that does not import is logged and the supervisor waits;
    the next good change is served again."""
    module = tmp_path / "fragile.py"
    module.write_text(APP_SOURCE.format(version="good"))
    with bayou_process(
        "fragile:app", "--reload", "--reload-dir", str(tmp_path), cwd=tmp_path
    ) as proc:
        proc.wait_for_line(READY)
        module.write_text("def app(:\n")
        proc.wait_for_line("SyntaxError")
        proc.wait_for_line("Waiting for a file change")
        assert proc.proc.poll() is None
        module.write_text(APP_SOURCE.format(version="fixed again"))
        proc.wait_for_line(READY)
        assert fetch_sync(proc.url, "/").body == b"fixed again"


def test_file_watcher_reports_added_changed_and_removed_files(tmp_path: Path) -> None:
    """FileWatcher.changed() lists .py files added, modified or deleted since the
    previous call, ignores other suffixes, hidden dirs and __pycache__."""
    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "__pycache__").mkdir()
    tmp_path = tmp_path.resolve()
    watcher = FileWatcher([tmp_path])
    assert watcher.changed() == []
    (tmp_path / "a.py").write_text("a = 22\n")
    (tmp_path / "b.py").write_text("b = 1\n")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden" / "c.py").write_text("c = 1\n")
    (tmp_path / "__pycache__" / "d.py").write_text("d = 1\n")
    assert watcher.changed() == [str(tmp_path / "a.py"), str(tmp_path / "b.py")]
    (tmp_path / "b.py").unlink()
    assert watcher.changed() == [str(tmp_path / "b.py")]
    assert watcher.changed() == []


def test_workers_on_a_unix_socket_and_sighup_restart(tmp_path: Path) -> None:
    """--workers share a UNIX socket; SIGHUP replaces every worker while the socket
    keeps serving; the supervisor removes the socket file at exit."""
    path = tmp_path / "workers.sock"
    with bayou_process("tests.apps:app", "--workers", "2", "-u", str(path)) as proc:
        old = {int(proc.wait_for_line(READY).group(1)) for _ in range(2)}
        assert fetch_sync(f"unix:{path}", "/").body == b"hello"
        proc.send_signal(signal.SIGHUP)
        new = {int(proc.wait_for_line(READY).group(1)) for _ in range(2)}
        assert not old & new
        assert fetch_sync(f"unix:{path}", "/").body == b"hello"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert not path.exists()
