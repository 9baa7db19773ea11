"""How channel layers give each receiver a private copy of a message.

The layer spec only allows primitives (str, bytes, int, float, bool, None) and
lists/dicts of them; values of those immutable types are shared between copies,
containers are copied, so a receiver may mutate its message without affecting
another's. Anything else falls back to ``copy.deepcopy`` (compatibility, not speed).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["ATOMIC_TYPES", "copy_value", "is_flat"]

ATOMIC_TYPES: frozenset[type] = frozenset({str, bytes, int, float, bool, type(None)})


def copy_value(value: Any) -> Any:
    """A copy of ``value`` sharing only its immutable leaves."""
    kind = type(value)
    if kind in ATOMIC_TYPES:
        return value
    if kind is dict:
        return {key: copy_value(item) for key, item in value.items()}
    if kind is list:
        return [copy_value(item) for item in value]
    if kind is tuple:
        return tuple(copy_value(item) for item in value)
    return copy.deepcopy(value)


def is_flat(message: Any) -> bool:
    """True for a dict of immutable values only: ``dict.copy()`` makes a private copy."""
    return type(message) is dict and all(type(value) in ATOMIC_TYPES for value in message.values())
