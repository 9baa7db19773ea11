"""ASGI entry point: ``django_bayou.asgi:application`` (WebSocket routes only)."""

import os

# Forced, not setdefault: a DJANGO_SETTINGS_MODULE left in the shell must not win.
os.environ["DJANGO_SETTINGS_MODULE"] = "django_bayou.settings"

import django

django.setup()

from django.urls import path  # noqa: E402
from djangobench.consumers import routes  # noqa: E402

from bayou.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from bayou.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

application = ProtocolTypeRouter({"websocket": URLRouter(routes(AsyncWebsocketConsumer, path))})
