"""ASGI entry point: HTTP goes to Django, WebSockets to the consumers in chat/routing.py.

This is the ``ASGI_APPLICATION`` of the example project. It is the same file a
Channels project has, with ``channels.`` spelled ``bayou.``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

# Set up Django (apps, models) before importing code that uses models.
django_asgi_app = get_asgi_application()

from bayou.auth import AuthMiddlewareStack  # noqa: E402
from bayou.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from bayou.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Refuse cross-site WebSockets (Origin checked against ALLOWED_HOSTS), then
        # give consumers the session and the logged-in user.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
