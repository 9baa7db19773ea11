"""System checks for a Django project using bayou.

Each problem has a stable id, documented in docs/reference/django.md:

- ``bayou.E001`` ``ASGI_APPLICATION`` is not set, and bayou's ``runserver`` would be used.
- ``bayou.E002`` ``ASGI_APPLICATION`` cannot be imported.
- ``bayou.E003`` ``ASGI_APPLICATION`` is not an ASGI application.
- ``bayou.W001`` ``ASGI_APPLICATION`` is a callable not declared async (may not be ASGI).
- ``bayou.E004`` ``CHANNEL_LAYERS`` is malformed or an alias has no ``BACKEND``.
- ``bayou.E005`` a ``CHANNEL_LAYERS`` ``BACKEND`` cannot be imported.
- ``bayou.E006`` ``bayou`` is listed after ``django.contrib.staticfiles`` in ``INSTALLED_APPS``.
- ``bayou.E007`` a ``CHANNEL_LAYERS`` alias has a ``ROUTING`` key (a Channels 1 leftover).

All checks carry the ``bayou`` tag: ``manage.py check --tag bayou`` runs only these.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

__all__ = [
    "TAG",
    "asgi_application_not_needed",
    "check_asgi_application",
    "check_channel_layers",
    "check_installed_apps_order",
    "register_checks",
]

TAG = "bayou"

# Channels-era backend paths and where they live in bayou, for the E005 hint.
_RENAMED_BACKENDS = {
    "channels.layers.InMemoryChannelLayer": "bayou.layers.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer": "bayou's Redis channel layer",
    "channels_redis.pubsub.RedisPubSubChannelLayer": "bayou's Redis channel layer",
}


# True while `runserver --noasgi` runs its checks: Django's WSGI server needs no
# ASGI_APPLICATION, so its absence must not stop it (daphne behaves the same).
_asgi_not_needed: ContextVar[bool] = ContextVar("bayou_asgi_not_needed", default=False)


@contextlib.contextmanager
def asgi_application_not_needed() -> Iterator[None]:
    """Within this block a missing ``ASGI_APPLICATION`` is not reported (bayou.E001)."""
    token = _asgi_not_needed.set(True)
    try:
        yield
    finally:
        _asgi_not_needed.reset(token)


def register_checks() -> None:
    """Register every bayou check (idempotent; called from ``BayouConfig.ready``)."""
    checks.register(check_installed_apps_order, TAG)
    checks.register(check_asgi_application, TAG)
    checks.register(check_channel_layers, TAG)


def _bayou_runserver_wins() -> bool:
    """True when ``manage.py runserver`` resolves to bayou's command.

    Django lets the app listed first win a command-name clash, and
    ``django.contrib.staticfiles`` ships its own ``runserver``.
    """
    names = [config.name for config in apps.get_app_configs()]
    if "bayou" not in names:
        return False
    staticfiles = "django.contrib.staticfiles"
    return staticfiles not in names or names.index("bayou") < names.index(staticfiles)


def check_installed_apps_order(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``bayou.E006``: bayou must precede staticfiles so its ``runserver`` is used."""
    names = [config.name for config in apps.get_app_configs()]
    if "bayou" in names and not _bayou_runserver_wins():
        return [
            checks.Error(
                "bayou must be listed before django.contrib.staticfiles in INSTALLED_APPS.",
                hint=(
                    "Move 'bayou' above 'django.contrib.staticfiles' so that "
                    "'manage.py runserver' serves ASGI (HTTP and WebSocket) through bayou."
                ),
                id="bayou.E006",
            )
        ]
    return []


def check_asgi_application(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``bayou.E001``-``E003``, ``W001``: ``ASGI_APPLICATION`` is set, importable and
    an ASGI app."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        if not _bayou_runserver_wins() or _asgi_not_needed.get():
            # Django's own runserver is in charge; nothing of bayou's needs the setting.
            return []
        return [
            checks.Error(
                "You have not set ASGI_APPLICATION, which is needed to run the server.",
                hint=(
                    "Set ASGI_APPLICATION = 'yourproject.asgi.application' in your settings "
                    "(the module that builds your ProtocolTypeRouter)."
                ),
                id="bayou.E001",
            )
        ]
    if not isinstance(path, str):
        return [
            checks.Error(
                f"ASGI_APPLICATION must be a dotted path string, not {type(path).__name__}.",
                hint="For example ASGI_APPLICATION = 'yourproject.asgi.application'.",
                id="bayou.E002",
            )
        ]
    try:
        application = import_string(path)
    except Exception as exc:
        # Any exception: an ImportError, but also whatever the asgi module raises.
        return [
            checks.Error(
                f"Cannot import ASGI_APPLICATION {path!r}: {type(exc).__name__}: {exc}",
                hint=(
                    "Check the dotted path (module path, then the attribute name, e.g. "
                    "'yourproject.asgi.application') and that the module imports cleanly."
                ),
                id="bayou.E002",
            )
        ]
    problem, certain = _asgi_problem(application)
    if problem is None:
        return []
    hint = (
        "Point ASGI_APPLICATION at an ASGI 3 callable such as a ProtocolTypeRouter "
        "instance, django.core.asgi.get_asgi_application(), or Consumer.as_asgi()."
    )
    if certain:
        return [
            checks.Error(
                f"ASGI_APPLICATION {path!r} is not an ASGI application: {problem}.",
                hint=hint,
                id="bayou.E003",
            )
        ]
    return [
        checks.Warning(
            f"ASGI_APPLICATION {path!r} may not be an ASGI application: {problem}.",
            hint=hint + " Ignore this if the callable returns an awaitable.",
            id="bayou.W001",
        )
    ]


def _asgi_problem(application: Any) -> tuple[str | None, bool]:
    """Why ``application`` cannot be an ASGI app (None when it looks like one), and
    whether that is certain.

    An ASGI 3 app is an async callable; a class is accepted as an ASGI 2 double
    callable except for consumer classes, whose instance is not an app. A plain
    callable that is not declared async may still return an awaitable, so it
    is only suspicious; Django's WSGI handler is not.
    """
    from django.core.handlers.wsgi import WSGIHandler

    if inspect.isclass(application):
        if hasattr(application, "as_asgi"):
            name = application.__name__
            return f"{name} is a consumer class; use {name}.as_asgi()", True
        return None, False
    if not callable(application):
        return f"{type(application).__name__} objects are not callable", True
    if isinstance(application, WSGIHandler):
        return "it is Django's WSGI handler; use django.core.asgi.get_asgi_application()", True
    if iscoroutinefunction(application) or iscoroutinefunction(type(application).__call__):
        return None, False
    # An instance may carry its own (async) __call__ attribute, as some wrappers do.
    if iscoroutinefunction(getattr(application, "__call__", None)):  # noqa: B004
        return None, False
    if inspect.isfunction(application) or inspect.ismethod(application):
        return f"{application.__qualname__} is not an async function", False
    return f"{type(application).__name__}.__call__ is not async", False


def check_channel_layers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``bayou.E004``/``E005``/``E007``: every ``CHANNEL_LAYERS`` alias is usable."""
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not layers:
        # Unset or {} is valid: consumers get channel_layer = None.
        return []
    if not isinstance(layers, dict):
        return [
            checks.Error(
                f"CHANNEL_LAYERS must be a dict of aliases, not {type(layers).__name__}.",
                hint="For example {'default': {'BACKEND': 'bayou.layers.InMemoryChannelLayer'}}.",
                id="bayou.E004",
            )
        ]
    messages: list[checks.CheckMessage] = []
    for alias, config in layers.items():
        if not isinstance(config, dict) or not config.get("BACKEND"):
            messages.append(
                checks.Error(
                    f"No BACKEND specified for channel layer {alias!r}.",
                    hint=(
                        f"Set CHANNEL_LAYERS[{alias!r}]['BACKEND'] to the dotted path of a "
                        "layer class, e.g. 'bayou.layers.InMemoryChannelLayer'."
                    ),
                    id="bayou.E004",
                )
            )
            continue
        backend = config["BACKEND"]
        try:
            import_string(backend)
        except Exception as exc:
            hint = "Check the dotted path and that the backend's dependencies are installed."
            if backend in _RENAMED_BACKENDS:
                hint = f"Migrating from Channels? Use {_RENAMED_BACKENDS[backend]} instead."
            messages.append(
                checks.Error(
                    f"Cannot import BACKEND {backend!r} of channel layer {alias!r}: "
                    f"{type(exc).__name__}: {exc}",
                    hint=hint,
                    id="bayou.E005",
                )
            )
        if "ROUTING" in config:
            messages.append(
                checks.Error(
                    f"Channel layer {alias!r} has a ROUTING key, a Channels 1 setting.",
                    hint="Remove ROUTING; route with ASGI_APPLICATION instead.",
                    id="bayou.E007",
                )
            )
    return messages
