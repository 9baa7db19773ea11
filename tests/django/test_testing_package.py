"""bayou.testing as a package: exports and import cost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import bayou.testing
from tests.support.timeouts import scaled


def test_exports_match_channels_plus_alias() -> None:
    """Channels' four names are exported, plus bayou's LiveServerTestCase alias,
    and every exported name resolves."""
    assert set(bayou.testing.__all__) == {
        "ApplicationCommunicator",
        "ChannelsLiveServerTestCase",
        "HttpCommunicator",
        "LiveServerTestCase",
        "WebsocketCommunicator",
    }
    for name in bayou.testing.__all__:
        assert getattr(bayou.testing, name) is not None
    assert bayou.testing.LiveServerTestCase is bayou.testing.ChannelsLiveServerTestCase
    assert set(bayou.testing.__all__) <= set(dir(bayou.testing))


def test_import_is_cheap_and_does_not_touch_settings() -> None:
    """Importing bayou.testing (and using a communicator) neither configures
    Django settings nor imports django.test or the live-server module."""
    code = textwrap.dedent(
        """
        import asyncio, sys
        import bayou.testing
        from django.conf import settings

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

        response = asyncio.run(bayou.testing.HttpCommunicator(app, "GET", "/").get_response())
        assert response["status"] == 204, response
        assert not settings.configured, "settings were configured"
        assert "django.test" not in sys.modules, "django.test imported"
        assert "bayou.testing.live" not in sys.modules, "live server module imported"
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env=env,
        cwd=root,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
