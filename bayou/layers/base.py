"""The base class every channel layer derives from.

Same names, regular expressions and error messages as ``channels.layers.BaseChannelLayer``
so that third-party layers written against Channels keep working when they subclass this
class instead. Two deliberate differences, both fixes:

* names are matched against the whole string (``fullmatch``), so a trailing newline is
  rejected, and validation does not rely on ``assert`` (it also runs under ``python -O``);
* ``channel_capacity`` is compiled here, once, so ``get_capacity`` works for every
  subclass (Channels 4.3.2 leaves it uncompiled and its in-memory layer then raises on
  any non-empty ``channel_capacity``).
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, cast

__all__ = ["BaseChannelLayer", "CapacityPatterns", "CompiledCapacities"]

#: ``channel_capacity`` as users write it: glob string (or compiled regex) -> capacity.
CapacityPatterns = Mapping["str | re.Pattern[str]", int]
#: ``channel_capacity`` after :meth:`BaseChannelLayer.compile_capacities`.
CompiledCapacities = list[tuple["re.Pattern[str]", int]]


class BaseChannelLayer:
    """Name validation and capacity lookup shared by all layers.

    Subclasses implement the async methods (``send``, ``receive``, ``new_channel`` and,
    with the matching ``extensions`` entries, ``group_add``/``group_discard``/
    ``group_send`` and ``flush``).
    """

    MAX_NAME_LENGTH: ClassVar[int] = 100
    channel_name_regex: ClassVar[re.Pattern[str]] = re.compile(r"^[a-zA-Z\d\-_.]+(\![\d\w\-_.]*)?$")
    group_name_regex: ClassVar[re.Pattern[str]] = re.compile(r"^[a-zA-Z\d\-_.]+$")
    invalid_name_error: ClassVar[str] = (
        "{} name must be a valid unicode string "
        f"with length < {MAX_NAME_LENGTH} "
        "containing only ASCII alphanumerics, hyphens, underscores, or periods."
    )
    extensions: ClassVar[list[str]] = []

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: CapacityPatterns | CompiledCapacities | None = None,
    ) -> None:
        self.expiry = expiry
        self.capacity = capacity
        self.channel_capacity: CompiledCapacities = self.compile_capacities(channel_capacity or {})

    # -- capacity ---------------------------------------------------------------------

    def compile_capacities(
        self, channel_capacity: CapacityPatterns | CompiledCapacities
    ) -> CompiledCapacities:
        """Turn ``{glob-or-regex: capacity}`` into an ordered list of ``(regex, capacity)``.

        Glob strings are translated with :mod:`fnmatch`; objects with a ``match`` method
        (compiled regexes) are kept as they are. An already compiled list is returned as a
        new list, so compiling twice is harmless.
        """
        items: Iterable[tuple[Any, int]]
        if isinstance(channel_capacity, Mapping):
            items = channel_capacity.items()
        else:
            items = channel_capacity
        result: CompiledCapacities = []
        for pattern, value in items:
            if hasattr(pattern, "match"):
                result.append((cast("re.Pattern[str]", pattern), value))
            else:
                result.append((re.compile(fnmatch.translate(pattern)), value))
        return result

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching pattern's, else ``capacity``."""
        for pattern, capacity in self.channel_capacity:
            if pattern.match(channel):
                return capacity
        return self.capacity

    # -- names ------------------------------------------------------------------------

    def match_type_and_length(self, name: object) -> bool:
        """True if ``name`` is a ``str`` shorter than :attr:`MAX_NAME_LENGTH`."""
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Return ``True`` or raise ``TypeError`` with Channels' message.

        With ``receive=True`` a process-specific name must end at the ``!``.
        """
        if not self.match_type_and_length(name):
            raise TypeError(self.invalid_name_error.format("Channel"))
        assert isinstance(name, str)  # narrowed by match_type_and_length
        if self.channel_name_regex.fullmatch(name) is None:
            raise TypeError(self.invalid_name_error.format("Channel"))
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError("Specific channel names in receive() must end at the !")
        return True

    def require_valid_group_name(self, name: object) -> bool:
        """Return ``True`` or raise ``TypeError`` with Channels' message."""
        if not self.match_type_and_length(name):
            raise TypeError(self.invalid_name_error.format("Group"))
        assert isinstance(name, str)
        if self.group_name_regex.fullmatch(name) is None:
            raise TypeError(self.invalid_name_error.format("Group"))
        return True

    def valid_channel_names(self, names: list[str], receive: bool = False) -> bool:
        """Validate a non-empty list of channel names (``AssertionError`` if not a list)."""
        if not isinstance(names, list) or not names:
            raise AssertionError("names must be a non-empty list")
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    def non_local_name(self, name: str) -> str:
        """The part of a process-specific name up to and including the ``!``."""
        index = name.find("!")
        return name if index < 0 else name[: index + 1]

    def valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Deprecated alias of :meth:`require_valid_channel_name`."""
        warnings.warn(
            "valid_channel_name() is deprecated; use require_valid_channel_name().",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(name, receive=receive)

    def valid_group_name(self, name: object) -> bool:
        """Deprecated alias of :meth:`require_valid_group_name`."""
        warnings.warn(
            "valid_group_name() is deprecated; use require_valid_group_name().",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(name)

    # -- the layer interface ----------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel``; may raise ``ChannelFull``."""
        raise NotImplementedError("send() must be implemented by the channel layer")

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for and return the next message on ``channel``."""
        raise NotImplementedError("receive() must be implemented by the channel layer")

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new, unique, process-specific channel name."""
        raise NotImplementedError("new_channel() must be implemented by the channel layer")

    async def flush(self) -> None:
        """Drop every queued message and group (``flush`` extension)."""
        raise NotImplementedError("flush() must be implemented by the channel layer")

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (``groups`` extension)."""
        raise NotImplementedError("group_add() must be implemented by the channel layer")

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error if absent (``groups`` extension)."""
        raise NotImplementedError("group_discard() must be implemented by the channel layer")

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member of ``group`` (``groups`` extension)."""
        raise NotImplementedError("group_send() must be implemented by the channel layer")
