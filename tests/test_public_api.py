"""bayou's public API: explicit ``__all__`` everywhere, and Channels' names where promised.

Three promises are checked here, for every importable module under ``bayou``
(private ``_modules`` and ``__main__`` excepted):

* the module defines ``__all__`` as a list or tuple of unique strings;
* every name in ``__all__`` resolves on the module;
* for the modules that mirror ``channels.X``, every name of the Channels 4.3.2
  checklist (``docs/reference/api-compat.md``) exists, with Channels' call
  signature where users call it by keyword.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from types import ModuleType

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")

import django

django.setup()

import bayou  # noqa: E402


def _public_modules() -> list[str]:
    names = ["bayou"]
    for info in pkgutil.walk_packages(bayou.__path__, "bayou."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]):
            continue  # private modules and __main__
        names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


def test_module_discovery_finds_the_django_layer() -> None:
    """The walk over the package finds the modules users import (sanity check)."""
    for name in ("bayou.consumer", "bayou.generic.websocket", "bayou.layers", "bayou.testing"):
        assert name in PUBLIC_MODULES


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_exists_and_resolves(module_name: str) -> None:
    """Each public module has ``__all__`` (unique strings) and every name in it resolves."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, (list, tuple)), f"{module_name} has no __all__"
    assert all(isinstance(name, str) for name in exported)
    assert len(set(exported)) == len(exported), f"duplicates in {module_name}.__all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names missing attributes: {missing}"


# channels module -> (bayou module, names that must be in bayou's __all__)
CHANNELS_NAMES: dict[str, tuple[str, list[str]]] = {
    "channels": ("bayou", ["DEFAULT_CHANNEL_LAYER", "__version__"]),
    "channels.consumer": ("bayou.consumer", ["AsyncConsumer", "SyncConsumer", "get_handler_name"]),
    "channels.generic.websocket": (
        "bayou.generic.websocket",
        [
            "AsyncJsonWebsocketConsumer",
            "AsyncWebsocketConsumer",
            "JsonWebsocketConsumer",
            "WebsocketConsumer",
        ],
    ),
    "channels.generic.http": ("bayou.generic.http", ["AsyncHttpConsumer"]),
    "channels.routing": (
        "bayou.routing",
        ["ChannelNameRouter", "ProtocolTypeRouter", "URLRouter", "get_default_application"],
    ),
    "channels.middleware": ("bayou.middleware", ["BaseMiddleware"]),
    "channels.sessions": (
        "bayou.sessions",
        [
            "CookieMiddleware",
            "InstanceSessionWrapper",
            "SessionMiddleware",
            "SessionMiddlewareStack",
        ],
    ),
    "channels.auth": (
        "bayou.auth",
        [
            "AuthMiddleware",
            "AuthMiddlewareStack",
            "UserLazyObject",
            "get_user",
            "login",
            "logout",
        ],
    ),
    "channels.security.websocket": (
        "bayou.security.websocket",
        ["AllowedHostsOriginValidator", "OriginValidator", "WebsocketDenier"],
    ),
    "channels.db": (
        "bayou.db",
        [
            "DatabaseSyncToAsync",
            "aclose_old_connections",
            "close_old_connections",
            "database_sync_to_async",
        ],
    ),
    "channels.exceptions": (
        "bayou.exceptions",
        [
            "AcceptConnection",
            "ChannelFull",
            "DenyConnection",
            "InvalidChannelLayerError",
            "MessageTooLarge",
            "RequestAborted",
            "RequestTimeout",
            "StopConsumer",
        ],
    ),
    "channels.layers": (
        "bayou.layers",
        [
            "BaseChannelLayer",
            "ChannelLayerManager",
            "InMemoryChannelLayer",
            "channel_layers",
            "get_channel_layer",
        ],
    ),
    "channels.worker": ("bayou.worker", ["Worker"]),
    "channels.testing": (
        "bayou.testing",
        [
            "ApplicationCommunicator",
            "ChannelsLiveServerTestCase",
            "HttpCommunicator",
            "WebsocketCommunicator",
        ],
    ),
    "channels.testing.live": (
        "bayou.testing.live",
        ["ChannelsLiveServerTestCase", "make_application", "set_database_connection"],
    ),
    "channels.utils": ("bayou.utils", ["await_many_dispatch", "name_that_thing"]),
    "channels.management.commands.runworker": (
        "bayou.management.commands.runworker",
        ["Command"],
    ),
}


@pytest.mark.parametrize("channels_module", sorted(CHANNELS_NAMES))
def test_channels_names_are_exported(channels_module: str) -> None:
    """Every Channels 4.3.2 name of the checklist is in the mirroring bayou module's
    ``__all__`` and resolves there."""
    bayou_module, names = CHANNELS_NAMES[channels_module]
    module: ModuleType = importlib.import_module(bayou_module)
    missing = [n for n in names if n not in module.__all__ or not hasattr(module, n)]
    assert not missing, f"{bayou_module} lacks {channels_module} names {missing}"


def test_private_names_channels_code_relies_on() -> None:
    """The few private names third-party code and tests use exist too."""
    from bayou.auth import _get_user_session_key
    from bayou.consumer import AsyncConsumer, SyncConsumer
    from bayou.layers import BaseChannelLayer, ChannelLayerManager
    from bayou.routing import URLRouter

    assert callable(_get_user_session_key)
    assert AsyncConsumer._sync is False and SyncConsumer._sync is True
    assert URLRouter._path_routing is True
    assert callable(ChannelLayerManager._make_backend)
    assert callable(ChannelLayerManager._reset_backends)
    assert "{}" in BaseChannelLayer.invalid_name_error


def _params(obj: object) -> list[str]:
    return [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]  # type: ignore[arg-type]


# Callables users call with keyword arguments: the parameter names (in order) must
# be Channels'. bayou may add keyword-only parameters after them.
SIGNATURES: list[tuple[str, str, list[str]]] = [
    ("bayou.consumer", "AsyncConsumer.as_asgi", ["initkwargs"]),
    ("bayou.generic.websocket", "WebsocketConsumer.accept", ["subprotocol", "headers"]),
    ("bayou.generic.websocket", "WebsocketConsumer.close", ["code", "reason"]),
    ("bayou.generic.websocket", "WebsocketConsumer.send", ["text_data", "bytes_data", "close"]),
    ("bayou.generic.websocket", "AsyncWebsocketConsumer.accept", ["subprotocol", "headers"]),
    ("bayou.generic.websocket", "AsyncWebsocketConsumer.close", ["code", "reason"]),
    (
        "bayou.generic.websocket",
        "AsyncWebsocketConsumer.send",
        ["text_data", "bytes_data", "close"],
    ),
    ("bayou.generic.websocket", "JsonWebsocketConsumer.send_json", ["content", "close"]),
    ("bayou.generic.websocket", "AsyncJsonWebsocketConsumer.send_json", ["content", "close"]),
    ("bayou.generic.http", "AsyncHttpConsumer.send_headers", ["status", "headers"]),
    ("bayou.generic.http", "AsyncHttpConsumer.send_body", ["body", "more_body"]),
    ("bayou.generic.http", "AsyncHttpConsumer.send_response", ["status", "body", "kwargs"]),
    (
        "bayou.sessions",
        "CookieMiddleware.set_cookie",
        [
            "message",
            "key",
            "value",
            "max_age",
            "expires",
            "path",
            "domain",
            "secure",
            "httponly",
            "samesite",
        ],
    ),
    ("bayou.sessions", "CookieMiddleware.delete_cookie", ["message", "key", "path", "domain"]),
    ("bayou.auth", "login", ["scope", "user", "backend"]),
    ("bayou.security.websocket", "OriginValidator", ["application", "allowed_origins"]),
    ("bayou.layers", "get_channel_layer", ["alias"]),
    ("bayou.layers", "BaseChannelLayer", ["expiry", "capacity", "channel_capacity"]),
    (
        "bayou.layers",
        "InMemoryChannelLayer",
        ["expiry", "group_expiry", "capacity", "channel_capacity"],
    ),
    ("bayou.layers", "BaseChannelLayer.require_valid_channel_name", ["name", "receive"]),
    ("bayou.layers", "BaseChannelLayer.valid_channel_names", ["names", "receive"]),
    ("bayou.worker", "Worker", ["application", "channels", "channel_layer", "max_applications"]),
    ("bayou.testing", "HttpCommunicator", ["application", "method", "path", "body", "headers"]),
    (
        "bayou.testing",
        "WebsocketCommunicator",
        ["application", "path", "headers", "subprotocols", "spec_version"],
    ),
    ("bayou.testing", "WebsocketCommunicator.connect", ["timeout"]),
    ("bayou.testing", "WebsocketCommunicator.send_to", ["text_data", "bytes_data"]),
    ("bayou.testing", "WebsocketCommunicator.receive_from", ["timeout"]),
    ("bayou.testing", "WebsocketCommunicator.disconnect", ["code", "timeout"]),
    ("bayou.testing", "ApplicationCommunicator.receive_output", ["timeout"]),
    ("bayou.testing", "ApplicationCommunicator.receive_nothing", ["timeout", "interval"]),
]


@pytest.mark.parametrize(("module_name", "qualname", "expected"), SIGNATURES)
def test_channels_signatures(module_name: str, qualname: str, expected: list[str]) -> None:
    """The leading positional-or-keyword parameters have Channels' names and order;
    anything bayou adds comes after them and is keyword-only."""
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    params = inspect.signature(obj).parameters  # type: ignore[arg-type]
    names = [n for n in params if n not in ("self", "cls")]
    assert names[: len(expected)] == expected
    for extra in names[len(expected) :]:
        assert params[extra].kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.VAR_KEYWORD,
        ), f"{qualname}: added parameter {extra!r} must be keyword-only"
