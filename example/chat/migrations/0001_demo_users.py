"""Create the demo accounts ``demo`` and ``demo2`` (password ``demo``).

A data migration, so ``manage.py migrate`` on a fresh clone is all it takes to
log in. Never do this with real credentials.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations

DEMO_USERS = ("demo", "demo2")
DEMO_PASSWORD = "demo"


def create_demo_users(apps: Any, schema_editor: Any) -> None:
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    for username in DEMO_USERS:
        if not user_model.objects.filter(username=username).exists():
            user_model.objects.create(username=username, password=make_password(DEMO_PASSWORD))


def delete_demo_users(apps: Any, schema_editor: Any) -> None:
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    user_model.objects.filter(username__in=DEMO_USERS).delete()


class Migration(migrations.Migration):
    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [migrations.RunPython(create_demo_users, delete_demo_users)]
