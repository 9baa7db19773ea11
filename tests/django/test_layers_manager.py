"""get_channel_layer() and ChannelLayerManager: settings, caching, errors (Channels-compatible)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

import bayou.layers
from bayou.exceptions import InvalidChannelLayerError
from bayou.layers import (
    BaseChannelLayer,
    ChannelLayerManager,
    InMemoryChannelLayer,
    channel_layers,
    get_channel_layer,
)

MEMORY = "bayou.layers.InMemoryChannelLayer"


class ExplodingLayer(BaseChannelLayer):
    """A backend whose constructor raises KeyError (must not look like "not configured")."""

    def __init__(self, **kwargs: Any) -> None:
        raise KeyError("missing-config-key")


class RecordingLayer(BaseChannelLayer):
    """A backend that keeps the keyword arguments it was built with."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs


def test_public_names() -> None:
    """bayou.layers exports Channels' names, and __all__ matches what the module defines."""
    assert set(bayou.layers.__all__) == {
        "BaseChannelLayer",
        "ChannelLayerManager",
        "InMemoryChannelLayer",
        "channel_layers",
        "get_channel_layer",
    }
    for name in bayou.layers.__all__:
        assert hasattr(bayou.layers, name)
    assert isinstance(channel_layers, ChannelLayerManager)


def test_default_layer_is_cached() -> None:
    """get_channel_layer() builds the configured backend once and returns the same object."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert get_channel_layer("default") is layer
    assert channel_layers["default"] is layer


def test_setting_change_drops_cached_layers() -> None:
    """Changing CHANNEL_LAYERS (override_settings) discards cached instances."""
    before = get_channel_layer()
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": MEMORY}}):
        inside = get_channel_layer()
        assert inside is not before
    assert get_channel_layer() is not inside


@override_settings(CHANNEL_LAYERS={})
def test_no_layers_configured() -> None:
    """With CHANNEL_LAYERS = {} there is no layer: get_channel_layer() returns None."""
    assert get_channel_layer() is None
    assert "default" not in channel_layers


@override_settings(CHANNEL_LAYERS=None)
def test_none_means_no_layers() -> None:
    """CHANNEL_LAYERS = None is treated like an empty setting."""
    assert get_channel_layer() is None


def test_unknown_alias() -> None:
    """An alias missing from CHANNEL_LAYERS gives None (get_channel_layer) / KeyError ([])."""
    assert get_channel_layer("nope") is None
    with pytest.raises(KeyError):
        channel_layers["nope"]


@override_settings(
    CHANNEL_LAYERS={"default": {"BACKEND": f"{__name__}.RecordingLayer", "CONFIG": {"a": 1}}}
)
def test_config_is_passed_as_keyword_arguments() -> None:
    """CONFIG is passed to the backend constructor as keyword arguments."""
    layer = get_channel_layer()
    assert isinstance(layer, RecordingLayer)
    assert layer.kwargs == {"a": 1}


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": MEMORY, "CONFIG": {"capacity": 3}}})
def test_in_memory_config() -> None:
    """The in-memory backend gets its CONFIG."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 3


@override_settings(CHANNEL_LAYERS={"default": {"CONFIG": {}}})
def test_missing_backend() -> None:
    """No BACKEND -> InvalidChannelLayerError("No BACKEND specified for default")."""
    with pytest.raises(InvalidChannelLayerError, match=r"^No BACKEND specified for default$"):
        get_channel_layer()


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "no.such.Layer"}})
def test_unimportable_backend() -> None:
    """An unimportable BACKEND -> InvalidChannelLayerError naming the path and the alias."""
    with pytest.raises(
        InvalidChannelLayerError,
        match=r"^Cannot import BACKEND 'no.such.Layer' specified for default$",
    ):
        get_channel_layer()


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": MEMORY, "ROUTING": "x.y"}})
def test_routing_key_is_rejected() -> None:
    """A Channels 1 ROUTING key is an error mentioning Channels 2."""
    with pytest.raises(
        InvalidChannelLayerError,
        match=r"^ROUTING key found for default - this is no longer needed in Channels 2\.$",
    ):
        get_channel_layer()


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": f"{__name__}.ExplodingLayer"}})
def test_backend_errors_propagate_unchanged() -> None:
    """A KeyError raised by the backend's constructor reaches the caller as KeyError."""
    with pytest.raises(KeyError, match="missing-config-key"):
        get_channel_layer()


@override_settings(
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": f"{__name__}.RecordingLayer",
            "CONFIG": {"real": True},
            "TEST_CONFIG": {"test": True},
        },
        "plain": {"BACKEND": MEMORY},
    }
)
def test_make_test_backend() -> None:
    """make_test_backend() uses TEST_CONFIG, and fails clearly without one; make_backend CONFIG."""
    test_layer = channel_layers.make_test_backend("default")
    assert isinstance(test_layer, RecordingLayer)
    assert test_layer.kwargs == {"test": True}
    real = channel_layers.make_backend("default")
    assert isinstance(real, RecordingLayer)
    assert real.kwargs == {"real": True}
    assert channel_layers.make_backend("default") is not real
    with pytest.raises(InvalidChannelLayerError, match=r"^No TEST_CONFIG specified for plain$"):
        channel_layers.make_test_backend("plain")


def test_set_swaps_a_layer_and_returns_the_old_one() -> None:
    """set(alias, layer) installs a layer for get_channel_layer() and returns the previous one."""
    original = get_channel_layer()
    replacement = InMemoryChannelLayer()
    try:
        assert channel_layers.set("default", replacement) is original
        assert get_channel_layer() is replacement
        extra = InMemoryChannelLayer()
        assert channel_layers.set("extra", extra) is None
        assert get_channel_layer("extra") is extra
    finally:
        channel_layers.set("default", original)
        channel_layers.backends.pop("extra", None)


def test_other_setting_changes_keep_the_cache() -> None:
    """Changing an unrelated setting keeps cached layers."""
    layer = get_channel_layer()
    with override_settings(DEBUG=True):
        assert get_channel_layer() is layer
