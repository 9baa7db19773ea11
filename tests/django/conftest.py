"""Django set-up shared by every test in tests/django (owned by the consumer/routing area).

``DJANGO_SETTINGS_MODULE`` defaults to ``tests.django.settings`` (an in-memory
channel layer as ``default``, SQLite in memory) and ``django.setup()`` runs
once, before the test modules are imported.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
django.setup()
