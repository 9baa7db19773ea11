"""Settings of the bayou example project: a development setup, not a deployment one.

SQLite, the in-memory channel layer (one process), DEBUG on, local hosts only.
``BAYOU_EXAMPLE_DB`` overrides the database file (the tests use a temporary one).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Development only: a fixed key is fine for a demo that listens on localhost.
SECRET_KEY = "django-insecure-bayou-example-not-for-production"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    # Before django.contrib.staticfiles, so that "runserver" is bayou's (ASGI) one.
    "bayou",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# HTTP and WebSocket both enter here; see example_project/asgi.py.
ASGI_APPLICATION = "example_project.asgi.application"

# One process, so the in-memory layer is enough. Several processes need the
# Redis layer instead.
CHANNEL_LAYERS = {
    "default": {"BACKEND": "bayou.layers.InMemoryChannelLayer"},
}
if os.environ.get("BAYOU_REDIS_URL"):
    # Two (or more) demo servers sharing chat rooms through Redis:
    #   BAYOU_REDIS_URL=redis://127.0.0.1:6379/0 python example/manage.py runserver 8000
    #   BAYOU_REDIS_URL=redis://127.0.0.1:6379/0 python example/manage.py runserver 8001
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": os.environ.get("BAYOU_REDIS_LAYER", "bayou.layers.redis.RedisChannelLayer"),
            "CONFIG": {
                "hosts": [os.environ["BAYOU_REDIS_URL"]],
                "prefix": os.environ.get("BAYOU_REDIS_PREFIX", "bayou-example"),
            },
        },
    }

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BAYOU_EXAMPLE_DB") or BASE_DIR / "db.sqlite3",
    }
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "index"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Seconds between two simulated price updates on the ticker page.
TICKER_INTERVAL = float(os.environ.get("BAYOU_EXAMPLE_TICKER_INTERVAL", "1.0"))
