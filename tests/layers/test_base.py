"""BaseChannelLayer: Channels-compatible name validation, capacities and stubs."""

from __future__ import annotations

import re

import pytest

from bayou.layers.base import BaseChannelLayer

ERROR = (
    "{} name must be a valid unicode string with length < 100 containing only ASCII "
    "alphanumerics, hyphens, underscores, or periods."
)


def test_class_attributes_match_channels() -> None:
    """MAX_NAME_LENGTH, the two regexes and the error template are Channels' values."""
    assert BaseChannelLayer.MAX_NAME_LENGTH == 100
    assert BaseChannelLayer.channel_name_regex.pattern == r"^[a-zA-Z\d\-_.]+(\![\d\w\-_.]*)?$"
    assert BaseChannelLayer.group_name_regex.pattern == r"^[a-zA-Z\d\-_.]+$"
    assert BaseChannelLayer.invalid_name_error.format("Channel") == ERROR.format("Channel")
    assert BaseChannelLayer.extensions == []


def test_constructor_defaults() -> None:
    """expiry=60, capacity=100 and an empty compiled channel_capacity by default."""
    layer = BaseChannelLayer()
    assert (layer.expiry, layer.capacity, layer.channel_capacity) == (60, 100, [])


@pytest.mark.parametrize(
    "name",
    ["a", "A-b_c.d", "x" * 99, "specific.abc!", "specific.abc!def_1-2.3", "0!", "a!"],
)
def test_valid_channel_names(name: str) -> None:
    """Letters, digits, - _ . and one ! followed by word characters are valid, up to 99 chars."""
    assert BaseChannelLayer().require_valid_channel_name(name) is True


@pytest.mark.parametrize(
    "name",
    ["", " ", "a b", "a/b", "a!b!c", "!abc", "x" * 100, "abc\n", "ä", None, 1, b"abc"],
)
def test_invalid_channel_names(name: object) -> None:
    """Anything else raises TypeError with Channels' message (a trailing newline too)."""
    with pytest.raises(TypeError, match=re.escape(ERROR.format("Channel"))):
        BaseChannelLayer().require_valid_channel_name(name)


def test_receive_requires_specific_names_to_end_at_bang() -> None:
    """With receive=True a process-specific name must end right after the !."""
    layer = BaseChannelLayer()
    assert layer.require_valid_channel_name("specific.abc!", receive=True)
    assert layer.require_valid_channel_name("plain", receive=True)
    with pytest.raises(
        TypeError, match="Specific channel names in receive\\(\\) must end at the !"
    ):
        layer.require_valid_channel_name("specific.abc!def", receive=True)


@pytest.mark.parametrize("name", ["", "a!b", "a b", "g" * 100, "abc\n", None])
def test_invalid_group_names(name: object) -> None:
    """Group names follow the channel rules without any !."""
    with pytest.raises(TypeError, match=re.escape(ERROR.format("Group"))):
        BaseChannelLayer().require_valid_group_name(name)


def test_valid_group_name() -> None:
    """A name of letters, digits, - _ . is a valid group name."""
    assert BaseChannelLayer().require_valid_group_name("room-1_a.b") is True


def test_valid_channel_names_list() -> None:
    """valid_channel_names() checks each name and requires a non-empty list."""
    layer = BaseChannelLayer()
    assert layer.valid_channel_names(["a", "b!"]) is True
    with pytest.raises(AssertionError):
        layer.valid_channel_names([])
    with pytest.raises(AssertionError):
        layer.valid_channel_names(("a",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        layer.valid_channel_names(["a", "b c"])


def test_deprecated_validators_warn() -> None:
    """valid_channel_name()/valid_group_name() warn (DeprecationWarning) and still validate."""
    layer = BaseChannelLayer()
    with pytest.warns(DeprecationWarning):
        assert layer.valid_channel_name("abc") is True
    with pytest.warns(DeprecationWarning):
        assert layer.valid_group_name("abc") is True
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        layer.valid_group_name("a!b")


def test_match_type_and_length() -> None:
    """Only str names shorter than MAX_NAME_LENGTH pass."""
    layer = BaseChannelLayer()
    assert layer.match_type_and_length("x" * 99)
    assert not layer.match_type_and_length("x" * 100)
    assert not layer.match_type_and_length(b"x")


def test_non_local_name() -> None:
    """non_local_name() keeps everything up to and including the first !."""
    layer = BaseChannelLayer()
    assert layer.non_local_name("specific.abc!def") == "specific.abc!"
    assert layer.non_local_name("plain.name") == "plain.name"


def test_capacities_are_compiled_in_order() -> None:
    """Globs and compiled regexes both work, first match wins, the default applies otherwise."""
    layer = BaseChannelLayer(
        capacity=7,
        channel_capacity={"http.request": 200, "http.response!*": 10, re.compile(r"^web.+"): 5},
    )
    assert layer.get_capacity("http.request") == 200
    assert layer.get_capacity("http.response!abc") == 10
    assert layer.get_capacity("websocket.send!x") == 5
    assert layer.get_capacity("other") == 7
    first_wins = BaseChannelLayer(channel_capacity={"a*": 1, "ab*": 2})
    assert first_wins.get_capacity("abc") == 1


def test_compile_capacities_accepts_compiled_lists() -> None:
    """Compiling an already compiled list keeps it working (for layers that compile twice)."""
    layer = BaseChannelLayer(channel_capacity={"a*": 3})
    again = BaseChannelLayer(channel_capacity=layer.channel_capacity)
    assert again.get_capacity("abc") == 3


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("send", ("a", {})),
        ("receive", ("a",)),
        ("new_channel", ()),
        ("flush", ()),
        ("group_add", ("g", "a")),
        ("group_discard", ("g", "a")),
        ("group_send", ("g", {})),
    ],
)
async def test_stubs_raise_not_implemented(method: str, args: tuple[object, ...]) -> None:
    """Every layer method of the base class raises NotImplementedError."""
    with pytest.raises(NotImplementedError):
        await getattr(BaseChannelLayer(), method)(*args)
