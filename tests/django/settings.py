"""Minimal Django settings for bayou's Django-layer tests (``tests.django.settings``)."""

from __future__ import annotations

SECRET_KEY = "bayou-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "bayou",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
    }
}

CHANNEL_LAYERS = {
    "default": {"BACKEND": "bayou.layers.InMemoryChannelLayer"},
}

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
