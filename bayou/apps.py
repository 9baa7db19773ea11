"""The Django app: add ``"bayou"`` to ``INSTALLED_APPS`` (before ``django.contrib.staticfiles``).

Installing the app gives the ASGI ``runserver`` command and bayou's system checks.
"""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["BayouConfig"]


class BayouConfig(AppConfig):
    name = "bayou"
    verbose_name = "bayou"

    def ready(self) -> None:
        # Imported here, not at module level: checks import settings-dependent code.
        # bayou.db tracks open connections (connection_created) so consumers skip the
        # close_old_connections thread hop when none is open: it must see every one.
        import bayou.db  # noqa: F401
        from bayou import checks

        checks.register_checks()
