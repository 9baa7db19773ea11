"""Channel layers behind ``get_channel_layer()`` (``channels.layers`` compatible).

``CHANNEL_LAYERS`` is read lazily from Django settings; layer instances are created on
first use, cached per alias and dropped when the setting changes (``override_settings``).
The layer classes themselves do not need Django.
"""

from __future__ import annotations

from typing import Any

from bayou import DEFAULT_CHANNEL_LAYER
from bayou.exceptions import InvalidChannelLayerError
from bayou.layers.base import BaseChannelLayer
from bayou.layers.memory import InMemoryChannelLayer

__all__ = [
    "BaseChannelLayer",
    "ChannelLayerManager",
    "InMemoryChannelLayer",
    "channel_layers",
    "get_channel_layer",
]


class ChannelLayerManager:
    """Creates and caches one layer instance per alias of ``settings.CHANNEL_LAYERS``."""

    def __init__(self) -> None:
        #: alias -> layer instance (cache; replace entries with :meth:`set`).
        self.backends: dict[str, Any] = {}
        from django.core.signals import setting_changed

        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        if setting == "CHANNEL_LAYERS":
            self.backends = {}

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        """``settings.CHANNEL_LAYERS``, read on every access (``{}`` when unset)."""
        from django.conf import settings

        configs: dict[str, dict[str, Any]] = getattr(settings, "CHANNEL_LAYERS", None) or {}
        return configs

    def make_backend(self, name: str) -> Any:
        """A new instance of alias ``name`` built from its ``CONFIG``."""
        config = self.configs[name].get("CONFIG", {})
        return self._make_backend(name, config)

    def make_test_backend(self, name: str) -> Any:
        """A new instance of alias ``name`` built from its ``TEST_CONFIG``."""
        try:
            config = self.configs[name]["TEST_CONFIG"]
        except KeyError:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for {name}") from None
        return self._make_backend(name, config)

    def _make_backend(self, name: str, config: dict[str, Any]) -> Any:
        from django.utils.module_loading import import_string

        layer_config = self.configs[name]
        if "ROUTING" in layer_config:
            raise InvalidChannelLayerError(
                f"ROUTING key found for {name} - this is no longer needed in Channels 2."
            )
        try:
            path = layer_config["BACKEND"]
        except KeyError:
            raise InvalidChannelLayerError(f"No BACKEND specified for {name}") from None
        try:
            backend_class = import_string(path)
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"Cannot import BACKEND {path!r} specified for {name}"
            ) from exc
        # Errors raised by the backend itself propagate unchanged.
        return backend_class(**config)

    def __getitem__(self, key: str) -> Any:
        if key not in self.backends:
            self.backends[key] = self.make_backend(key)
        return self.backends[key]

    def __contains__(self, key: object) -> bool:
        return key in self.configs

    def set(self, key: str, layer: Any) -> Any:
        """Install ``layer`` as the instance for alias ``key``; return the previous one."""
        old = self.backends.get(key)
        self.backends[key] = layer
        return old


#: The process-wide manager used by :func:`get_channel_layer`.
channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> BaseChannelLayer | None:
    """The layer instance for ``alias``, or ``None`` if ``CHANNEL_LAYERS`` lacks it.

    Unlike Channels, a ``KeyError`` raised while constructing the layer propagates
    instead of being mistaken for "not configured".
    """
    if alias not in channel_layers.backends and alias not in channel_layers:
        return None
    layer: BaseChannelLayer = channel_layers[alias]
    return layer
