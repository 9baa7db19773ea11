"""__all__ of the layer modules lists exactly their public definitions."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "bayou.layers",
    "bayou.layers.base",
    "bayou.layers.memory",
    "bayou.layers.stats",
    "bayou.worker",
    "bayou.testing.layers",
    "bayou.management.commands.runworker",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_matches_public_definitions(name: str) -> None:
    """Every __all__ entry exists; every public class/function defined here is in __all__."""
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert all(hasattr(module, item) for item in exported)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    assert defined <= exported, defined - exported
