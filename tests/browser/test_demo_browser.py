"""The example project's pages in a real headless Chromium.

tests/django/test_example.py speaks the WebSocket protocol to the demo
directly; these tests run the demo's own JavaScript (echo.js, room.js,
ticker.js) against bayou's server, and act as a user would: real keyboard
input, real mouse clicks, logins through Django's form, one browser context
(cookie jar) per user. Every wait polls the DOM up to a scaled deadline.

Without Chromium the module is skipped with ``SKIP_REASON`` (see conftest.py).
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.browser.cdp import BrowserContext, Chromium, Page, find_chromium
from tests.browser.conftest import SKIP_REASON, StartDemo
from tests.django.test_example import Demo
from tests.support.timeouts import scaled

pytestmark = pytest.mark.skipif(find_chromium() is None, reason=SKIP_REASON)

PRICE = re.compile(r"\d+\.\d\d")


def status_is(text: str) -> str:
    """A wait_for expression: the page's #status line reads ``text``."""
    return f"document.getElementById('status').textContent === {json.dumps(text)}"


def chat_log_has(line: str) -> str:
    """A wait_for expression: the chat log contains ``line`` as a whole line."""
    return f"document.getElementById('chat-log').value.split('\\n').includes({json.dumps(line)})"


def log_in(context: BrowserContext, demo: Demo, username: str, room: str) -> Page:
    """Open ``room`` in a new tab of ``context``: the login form comes first (the
    room needs a user), is filled in with the keyboard and submitted with the mouse;
    returns the tab once the room's socket is connected."""
    page = context.new_page()
    page.navigate(f"{demo.url}/?room={room}")
    assert page.evaluate("location.pathname") == "/accounts/login/"
    page.type("#id_username", username)
    page.type("#id_password", "demo")
    with page.expect_load():
        page.click("main form button[type=submit]")
    assert page.evaluate("location.pathname") == f"/chat/{room}/"
    page.wait_for(status_is("connected"))
    return page


def test_echo_page(chromium: Chromium, demo: Demo) -> None:
    """From the index page, the Echo link opens the echo page; its socket connects,
    and a message sent with the Send button, then one sent with Enter, come back
    and are listed newest first."""
    with chromium.context() as context:
        page = context.new_page()
        page.navigate(demo.url + "/")
        with page.expect_load():
            page.click("a[href='/echo/']")
        assert page.evaluate("location.href") == demo.url + "/echo/"
        page.wait_for(status_is("connected"))

        page.type("#echo-input", "héllo bayou")
        page.click("#echo-send")
        page.wait_for("document.querySelectorAll('#echo-log li').length === 1")
        assert page.text("#echo-log li") == "héllo bayou"
        assert page.text("#echo-input") == ""  # the page clears the field after sending

        page.type("#echo-input", "second <b>line</b>")
        page.press_enter()
        page.wait_for("document.querySelectorAll('#echo-log li').length === 2")
        items = page.evaluate(
            "Array.from(document.querySelectorAll('#echo-log li'), e => e.textContent)"
        )
        # Shown as text, not parsed as markup.
        assert items == ["second <b>line</b>", "héllo bayou"]
        assert page.evaluate("document.querySelector('#echo-log b')") is None
        assert page.errors == []


def test_chat_between_two_users(chromium: Chromium, demo: Demo) -> None:
    """demo and demo2 (separate browser contexts) both in room "lobby": what one
    types appears in both pages with the sender's username; a page in another room
    shows its own messages but not the lobby's."""
    with chromium.context() as first, chromium.context() as second:
        alice = log_in(first, demo, "demo", "lobby")
        bob = log_in(second, demo, "demo2", "lobby")
        # demo2's context is logged in now: a second tab goes straight to its room.
        elsewhere = second.new_page()
        elsewhere.navigate(f"{demo.url}/chat/elsewhere/")
        elsewhere.wait_for(status_is("connected"))

        alice.type("#chat-message-input", "hello lobby")
        alice.press_enter()
        bob.wait_for(chat_log_has("demo: hello lobby"))
        alice.wait_for(chat_log_has("demo: hello lobby"))

        bob.type("#chat-message-input", "hi demo")
        bob.click("#chat-message-submit")
        alice.wait_for(chat_log_has("demo2: hi demo"))
        bob.wait_for(chat_log_has("demo2: hi demo"))

        # Both lobby messages were on screen before this one was sent; had the other
        # room received them, they would have been shown before it.
        elsewhere.type("#chat-message-input", "anyone?")
        elsewhere.press_enter()
        elsewhere.wait_for(chat_log_has("demo2: anyone?"))
        assert elsewhere.text("#chat-log") == "demo2: anyone?\n"
        assert "anyone?" not in alice.text("#chat-log")
        assert "anyone?" not in bob.text("#chat-log")
        assert [p.errors for p in (alice, bob, elsewhere)] == [[], [], []]


def test_ticker_shows_price_updates(chromium: Chromium, demo: Demo) -> None:
    """The ticker page shows Bitcoin's price, then at least two updates pushed by the
    server's feed (and the price changes); the Litecoin button switches the display."""
    with chromium.context() as context:
        page = context.new_page()
        # Count every replacement of the price text, from before the page's script runs.
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": """
                window.__prices = [];
                document.addEventListener("DOMContentLoaded", () => {
                  const price = document.getElementById("coin-price");
                  new MutationObserver(() => window.__prices.push(price.textContent))
                    .observe(price, {childList: true, characterData: true, subtree: true});
                });
                """
            },
        )
        page.navigate(demo.url + "/ticker/")
        page.wait_for(status_is("connected"))
        # The snapshot sent on connect, then at least two updates of the feed.
        prices = page.wait_for("window.__prices.length >= 3 && window.__prices", scaled(15))
        assert all(PRICE.fullmatch(price) for price in prices), prices
        assert len(set(prices)) >= 2, prices
        assert page.text("#coin-name") == "Bitcoin"
        assert page.evaluate("document.querySelector('button.coin.active').dataset.coin") == "btc"

        page.click("button.coin[data-coin='ltc']")
        page.wait_for("document.getElementById('coin-name').textContent === 'Litecoin'")
        page.wait_for("document.querySelector('button.coin.active').dataset.coin === 'ltc'")
        assert PRICE.fullmatch(page.text("#coin-price"))
        assert page.errors == []


def test_chat_page_reports_server_shutdown(chromium: Chromium, start_demo: StartDemo) -> None:
    """When the server shuts down, the chat page's socket is closed with 1001
    (going away) and the page tells the user, with the code, to reload."""
    with chromium.context() as context:
        with start_demo() as proc:
            try:
                page = log_in(context, Demo(proc.url, proc.ws_url), "demo", "lobby")
                proc.send_signal(signal.SIGINT)  # CONTROL-C: graceful shutdown
                assert proc.wait() == 0
            finally:
                print("--- example server ---", proc.output, sep="\n")  # shown on failure
        page.wait_for(status_is("disconnected (code 1001); reload the page to reconnect"))
        assert page.errors == []
