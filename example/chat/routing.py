"""WebSocket routes, mounted by example_project/asgi.py."""

from django.urls import path, re_path

from chat.consumers import ChatConsumer, TickerConsumer
from chat.echo import echo_application

# Room names become group names (ASCII letters, digits, "-", "_"; under 100
# characters), hence the narrow pattern.
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<room_name>[A-Za-z0-9_-]{1,64})/$", ChatConsumer.as_asgi()),
    path("ws/ticker/", TickerConsumer.as_asgi()),
    path("ws/echo/", echo_application),
]
