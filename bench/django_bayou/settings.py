"""Minimal settings: no database, no HTTP views, the in-memory channel layer."""

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the TZ environment variable from this; keep logs in UTC
# Default capacity/expiry on purpose: the broadcast suites measure what a project
# gets out of the box, drops included.
CHANNEL_LAYERS = {"default": {"BACKEND": "bayou.layers.InMemoryChannelLayer"}}
LOGGING_CONFIG = None
