"""Fixtures of the browser tests: a headless Chromium and the example project.

The example project is started exactly as tests/django/test_example.py does it
(``manage.py migrate`` into a temporary SQLite file, then ``runserver`` on a
free port, both as subprocesses); its helpers are imported, not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.browser.cdp import Chromium, find_chromium
from tests.django.test_example import MANAGE, Demo, _migrate
from tests.django.test_runserver import ManageProcess, manage_process

SKIP_REASON = "Chromium not installed: apt-get install chromium"
"""Why the browser tests are skipped on a machine without Chromium (never a silent pass)."""

TICKER_INTERVAL = "0.2"
"""Seconds between simulated prices: several updates within one short wait."""

StartDemo = Callable[[], AbstractContextManager[ManageProcess]]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """One headless Chromium for the module; each test opens its own contexts."""
    executable = find_chromium()
    if executable is None:
        pytest.skip(SKIP_REASON)
    with Chromium.launch(executable) as browser:
        yield browser


@pytest.fixture(scope="module")
def example_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh SQLite file with the example's tables and its demo users."""
    db = tmp_path_factory.mktemp("browser-example") / "db.sqlite3"
    _migrate({"BAYOU_EXAMPLE_DB": str(db)})
    return db


@pytest.fixture(scope="module")
def start_demo(example_db: Path) -> StartDemo:
    """Start another ``runserver`` of the example on ``example_db`` (a context manager),
    for tests that stop the server themselves."""

    def start() -> AbstractContextManager[ManageProcess]:
        env = {
            "BAYOU_EXAMPLE_DB": str(example_db),
            "BAYOU_EXAMPLE_TICKER_INTERVAL": TICKER_INTERVAL,
        }
        return manage_process("runserver", "127.0.0.1:0", "--noreload", manage_py=MANAGE, env=env)

    return start


@pytest.fixture(scope="module")
def demo_process(start_demo: StartDemo) -> Iterator[ManageProcess]:
    """The example project's ``runserver`` for the whole module."""
    with start_demo() as proc:
        yield proc


@pytest.fixture(scope="module")
def demo(demo_process: ManageProcess) -> Demo:
    """Where the module's example server is (``url``, ``ws_url``)."""
    return Demo(demo_process.url, demo_process.ws_url)


@pytest.fixture(autouse=True)
def _print_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the server's and the browser's output produced during each test, so a
    failure report shows them (pytest shows captured output only for failures)."""
    proc = request.getfixturevalue("demo_process") if "demo" in request.fixturenames else None
    server_start = len(proc.output.splitlines()) if proc is not None else 0
    yield
    if proc is not None:
        print("--- example server ---", *proc.output.splitlines()[server_start:], sep="\n")
    if "chromium" in request.fixturenames:
        browser: Chromium = request.getfixturevalue("chromium")
        print("--- chromium stderr (tail) ---", browser.stderr, sep="\n")
