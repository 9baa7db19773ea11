"""``--reload``: notice changed Python files by polling their stat() results.

Development only. The supervisor process calls ``FileWatcher.changed()``
about twice a second; it watches files, never application state, and a
stat() walk over a project's source tree is cheap enough at that rate.
A dependency-free poller was preferred to inotify bindings (Linux-only,
an extra package) — see docs/reference/server.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["POLL_INTERVAL", "FileWatcher"]

POLL_INTERVAL = 0.5
"""Seconds between two scans."""

# Directories never worth scanning (virtualenvs, caches, VCS metadata).
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})

Snapshot = dict[str, tuple[int, int]]


class FileWatcher:
    """Tracks ``*.py`` files under ``dirs`` (recursively, hidden dirs skipped)."""

    def __init__(
        self, dirs: Iterable[str | os.PathLike[str]], suffixes: tuple[str, ...] = (".py",)
    ):
        self.dirs = [Path(d).resolve() for d in dirs] or [Path.cwd()]
        self.suffixes = suffixes
        self._snapshot = self._scan()

    def _scan(self) -> Snapshot:
        found: Snapshot = {}
        for root in self.dirs:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS]
                for name in filenames:
                    if not name.endswith(self.suffixes):
                        continue
                    path = os.path.join(dirpath, name)
                    try:
                        info = os.stat(path)
                    except OSError:  # deleted between listing and stat
                        continue
                    found[path] = (info.st_mtime_ns, info.st_size)
        return found

    def changed(self) -> list[str]:
        """Paths added, removed or modified since the previous call (sorted)."""
        current = self._scan()
        previous = self._snapshot
        self._snapshot = current
        return sorted(
            path
            for path in current.keys() | previous.keys()
            if current.get(path) != previous.get(path)
        )
