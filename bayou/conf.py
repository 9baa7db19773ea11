"""bayou's own Django settings, read lazily and forgotten when settings change.

Every bayou setting is a Django setting named ``BAYOU_<NAME>``. For the settings
daphne also has, the ``DAPHNE_<NAME>`` spelling is accepted as a fallback so a
project migrating from Channels keeps its values; the ``BAYOU_`` name wins when
both are set.

    from bayou.conf import bayou_settings
    bayou_settings.WEBSOCKET_MAX_MESSAGE_SIZE   # 1 MiB unless configured

Values are cached on first access and the cache is dropped on Django's
``setting_changed`` signal (``override_settings`` in tests), so a test that
overrides ``BAYOU_WEBSOCKET_MAX_MESSAGE_SIZE`` sees the new value.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from bayou.protocol.limits import Limits

__all__ = ["DEFAULTS", "LEGACY_NAMES", "PREFIX", "BayouSettings", "bayou_settings"]

PREFIX = "BAYOU_"

_limits = Limits()

DEFAULTS: dict[str, Any] = {
    # Largest incoming WebSocket message / frame in bytes; 0 = unlimited.
    "WEBSOCKET_MAX_MESSAGE_SIZE": _limits.ws_max_message_size,
    "WEBSOCKET_MAX_FRAME_SIZE": _limits.ws_max_frame_size,
    # Seconds the application has to accept or deny a WebSocket (runserver default).
    "WEBSOCKET_HANDSHAKE_TIMEOUT": 5.0,
}
"""Default of each bayou setting, by name without the ``BAYOU_`` prefix."""

LEGACY_NAMES: dict[str, str] = {
    "WEBSOCKET_MAX_MESSAGE_SIZE": "DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE",
    "WEBSOCKET_MAX_FRAME_SIZE": "DAPHNE_WEBSOCKET_MAX_FRAME_SIZE",
}
"""daphne setting names accepted as fallbacks, by bayou name."""


class BayouSettings:
    """Attribute access to bayou settings (``bayou_settings.NAME``).

    Lookup order: ``settings.BAYOU_NAME``, then the daphne name if there is one,
    then :data:`DEFAULTS`. Unknown names raise ``AttributeError``.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown bayou setting {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = getattr(settings, PREFIX + name, _MISSING)
        if value is _MISSING and name in LEGACY_NAMES:
            value = getattr(settings, LEGACY_NAMES[name], _MISSING)
        if value is _MISSING:
            value = DEFAULTS[name]
        self._cache[name] = value
        return value

    def reload(self) -> None:
        """Forget cached values; the next access reads Django settings again."""
        self._cache.clear()


_MISSING = object()

bayou_settings = BayouSettings()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(PREFIX) or setting in LEGACY_NAMES.values():
        bayou_settings.reload()


setting_changed.connect(_on_setting_changed)
