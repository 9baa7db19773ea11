"""bayou's system checks: each id fires for its misconfiguration and stays quiet otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from bayou.checks import (
    check_asgi_application,
    check_channel_layers,
    check_installed_apps_order,
)

HERE = __name__
APPS = ["bayou", "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles"]
GOOD_LAYERS = {"default": {"BACKEND": f"{HERE}.FakeLayer"}}


# --- objects ASGI_APPLICATION / BACKEND point at ---------------------------------


class FakeLayer:
    pass


async def async_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def sync_app(environ: Any, start_response: Any) -> None:
    pass


class AsyncCallable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class SyncCallable:
    def __call__(self, environ: Any, start_response: Any) -> None:
        pass


class FakeConsumer:
    @classmethod
    def as_asgi(cls) -> Any:
        return async_app


class Asgi2App:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        pass


class InstanceCall:
    """A wrapper that picks its (async) __call__ per instance."""

    def __init__(self) -> None:
        self.__call__ = async_app

    def __call__(self, *args: Any) -> Any:
        return self.__call__(*args)


async_instance = AsyncCallable()
async_attribute_instance = InstanceCall()
sync_instance = SyncCallable()
not_callable = 42


def _wsgi_handler() -> Any:
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler.__new__(WSGIHandler)  # no middleware loading needed for the check


wsgi_handler = _wsgi_handler()


def ids(messages: list[checks.CheckMessage]) -> list[str | None]:
    return [m.id for m in messages]


@pytest.fixture
def bayou_first() -> Iterator[None]:
    with override_settings(INSTALLED_APPS=APPS, ASGI_APPLICATION=f"{HERE}.async_app"):
        yield


# --- registration ----------------------------------------------------------------


def test_checks_run_under_the_bayou_tag(bayou_first: None) -> None:
    """BayouConfig.ready() registers the checks; they run with tag "bayou"."""
    assert checks.registry.registry.tag_exists("bayou")
    with override_settings(ASGI_APPLICATION=None, CHANNEL_LAYERS={"default": {}}):
        found = ids(checks.run_checks(tags=["bayou"]))
    assert sorted(i for i in found if i and i.startswith("bayou.")) == ["bayou.E001", "bayou.E004"]


def test_valid_configuration_has_no_messages(bayou_first: None) -> None:
    """Correct settings produce no bayou message at all."""
    with override_settings(CHANNEL_LAYERS=GOOD_LAYERS):
        assert checks.run_checks(tags=["bayou"]) == []


# --- ASGI_APPLICATION --------------------------------------------------------------


def test_e001_missing_asgi_application(bayou_first: None) -> None:
    """bayou.E001 when ASGI_APPLICATION is unset and bayou's runserver is in charge."""
    with override_settings(ASGI_APPLICATION=None):
        messages = check_asgi_application()
    assert ids(messages) == ["bayou.E001"]
    assert messages[0].level == checks.ERROR
    assert messages[0].hint


def test_e001_silent_when_staticfiles_runserver_wins() -> None:
    """With staticfiles listed first, Django's runserver is used: no E001 (E006 instead)."""
    apps = ["django.contrib.staticfiles", "bayou", "django.contrib.contenttypes"]
    with override_settings(INSTALLED_APPS=apps, ASGI_APPLICATION=None):
        assert check_asgi_application() == []
        assert ids(check_installed_apps_order()) == ["bayou.E006"]


@pytest.mark.parametrize(
    "path",
    ["no_such_module_for_bayou.asgi.application", f"{HERE}.missing_attribute", "noperiod"],
)
def test_e002_unimportable(bayou_first: None, path: str) -> None:
    """bayou.E002 when ASGI_APPLICATION cannot be imported; the message names the path."""
    with override_settings(ASGI_APPLICATION=path):
        messages = check_asgi_application()
    assert ids(messages) == ["bayou.E002"]
    assert path in messages[0].msg


def test_e002_not_a_string(bayou_first: None) -> None:
    """bayou.E002 when ASGI_APPLICATION is not a dotted path string."""
    with override_settings(ASGI_APPLICATION=async_app):
        assert ids(check_asgi_application()) == ["bayou.E002"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("not_callable", "not callable"),
        ("wsgi_handler", "WSGI handler"),
        ("FakeConsumer", "FakeConsumer.as_asgi()"),
    ],
)
def test_e003_not_an_asgi_app(bayou_first: None, name: str, fragment: str) -> None:
    """bayou.E003 (an error) when the imported object cannot be an ASGI application."""
    with override_settings(ASGI_APPLICATION=f"{HERE}.{name}"):
        messages = check_asgi_application()
    assert ids(messages) == ["bayou.E003"]
    assert messages[0].level == checks.ERROR
    assert fragment in messages[0].msg


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("sync_app", "not an async function"), ("sync_instance", "__call__ is not async")],
)
def test_w001_sync_callable(bayou_first: None, name: str, fragment: str) -> None:
    """bayou.W001 (a warning only: it may return an awaitable) for a callable not
    declared async."""
    with override_settings(ASGI_APPLICATION=f"{HERE}.{name}"):
        messages = check_asgi_application()
    assert ids(messages) == ["bayou.W001"]
    assert messages[0].level == checks.WARNING
    assert fragment in messages[0].msg


@pytest.mark.parametrize(
    "name", ["async_app", "async_instance", "async_attribute_instance", "Asgi2App"]
)
def test_asgi_apps_pass(bayou_first: None, name: str) -> None:
    """Async functions, instances with an async __call__ (on the class or set on the
    instance) and ASGI 2 classes pass."""
    with override_settings(ASGI_APPLICATION=f"{HERE}.{name}"):
        assert check_asgi_application() == []


# --- CHANNEL_LAYERS ----------------------------------------------------------------


@pytest.mark.parametrize("layers", [None, {}])
def test_no_channel_layers_is_fine(bayou_first: None, layers: Any) -> None:
    """Unset or empty CHANNEL_LAYERS means "no layer", which is valid."""
    with override_settings(CHANNEL_LAYERS=layers):
        assert check_channel_layers() == []


@pytest.mark.parametrize(
    "layers",
    [{"default": {}}, {"default": {"CONFIG": {}}}, {"default": "x"}, ["default"]],
)
def test_e004_missing_backend(bayou_first: None, layers: Any) -> None:
    """bayou.E004 when an alias has no BACKEND or CHANNEL_LAYERS is not a dict."""
    with override_settings(CHANNEL_LAYERS=layers):
        assert ids(check_channel_layers()) == ["bayou.E004"]


def test_e005_unimportable_backend(bayou_first: None) -> None:
    """bayou.E005 when BACKEND cannot be imported; each bad alias gets one message."""
    layers = {
        "default": {"BACKEND": "no_such_module_for_bayou.Layer"},
        "other": {"BACKEND": f"{HERE}.NoSuchLayer"},
        "fine": {"BACKEND": f"{HERE}.FakeLayer"},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        messages = check_channel_layers()
    assert ids(messages) == ["bayou.E005", "bayou.E005"]
    assert "'default'" in messages[0].msg
    assert "'other'" in messages[1].msg


def test_e005_hints_at_the_bayou_name_for_channels_backends(bayou_first: None) -> None:
    """A Channels backend path gets a migration hint naming bayou's replacement."""
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers):
        messages = check_channel_layers()
    if not messages:
        pytest.skip("the channels package is installed here")
    assert ids(messages) == ["bayou.E005"]
    assert messages[0].hint is not None
    assert "bayou.layers.InMemoryChannelLayer" in messages[0].hint


def test_e007_routing_key(bayou_first: None) -> None:
    """bayou.E007 for a Channels 1 ROUTING key."""
    layers = {"default": {"BACKEND": f"{HERE}.FakeLayer", "ROUTING": "x.routing"}}
    with override_settings(CHANNEL_LAYERS=layers):
        assert ids(check_channel_layers()) == ["bayou.E007"]


# --- INSTALLED_APPS order ------------------------------------------------------------


def test_e006_bayou_after_staticfiles() -> None:
    """bayou.E006 when staticfiles precedes bayou (its runserver would win)."""
    apps = ["django.contrib.contenttypes", "django.contrib.staticfiles", "bayou"]
    with override_settings(INSTALLED_APPS=apps):
        messages = check_installed_apps_order()
    assert ids(messages) == ["bayou.E006"]
    assert "before django.contrib.staticfiles" in messages[0].msg


@pytest.mark.parametrize(
    "apps",
    [
        ["bayou", "django.contrib.staticfiles"],
        ["bayou.apps.BayouConfig", "django.contrib.staticfiles"],
        ["bayou", "django.contrib.contenttypes"],
    ],
)
def test_e006_quiet_when_bayou_first_or_no_staticfiles(apps: list[str]) -> None:
    """No E006 when bayou comes first (also as an AppConfig path) or staticfiles is absent."""
    with override_settings(INSTALLED_APPS=apps):
        assert check_installed_apps_order() == []


def test_e001_silent_while_asgi_is_not_needed(bayou_first: None) -> None:
    """runserver --noasgi (Django's WSGI server) does not need ASGI_APPLICATION."""
    from bayou.checks import asgi_application_not_needed

    with override_settings(ASGI_APPLICATION=None):
        with asgi_application_not_needed():
            assert check_asgi_application() == []
        assert ids(check_asgi_application()) == ["bayou.E001"]
