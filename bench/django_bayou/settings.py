"""Minimal settings: no database, no HTTP views, the in-memory channel layer.

``BENCH_CHANNEL_LAYER`` + ``BENCH_REDIS_URL`` switch to a Redis layer (bench/ Redis suites).
"""

import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the TZ environment variable from this; keep logs in UTC
# Default capacity/expiry on purpose: the broadcast suites measure what a project
# gets out of the box, drops included.
CHANNEL_LAYERS: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "bayou.layers.InMemoryChannelLayer"}
}
# The Redis suites choose the layer (a backend path) and their private redis-server
# through the environment; CONFIG is otherwise the layer's defaults, as above.
if os.environ.get("BENCH_CHANNEL_LAYER"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": os.environ["BENCH_CHANNEL_LAYER"],
            "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
        }
    }
LOGGING_CONFIG = None
