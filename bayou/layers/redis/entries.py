"""The format of one queued message in Redis, shared by Python and the Lua scripts.

An entry is ``<deadline><kind><name>\\n<payload>``:

``deadline``
    16 ASCII digits: the wall-clock time (milliseconds since the epoch) after which the
    message is expired. Wall clock rather than monotonic because the deadline is read
    by other processes and by Lua; hosts are assumed NTP-synchronised (skew of a few
    milliseconds against an ``expiry`` of seconds does not matter).
``kind``
    ``c`` a direct ``send()`` to channel ``name`` (counted in the owner's depth hash),
    ``d`` a group message for the process-specific channel ``name``,
    ``g`` a group message for group ``name``: the receiving process hands it to its
    own members of that group, ``w`` a wake-up for the receive loop (no payload).
``payload``
    The serialized message, produced once per ``send``/``group_send``.

Names never contain ``\\n`` (channel and group names are validated), so the first
newline ends the header whatever bytes the payload holds.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DEADLINE_DIGITS", "Entry", "deadline_field", "encode", "parse"]

DEADLINE_DIGITS = 16

DIRECT = "c"
GROUP_MEMBER = "d"
GROUP = "g"
WAKE = "w"


class Entry(NamedTuple):
    """A parsed entry; ``deadline`` in seconds since the epoch."""

    deadline: float
    kind: str
    name: str
    payload: bytes


def deadline_field(deadline: float) -> bytes:
    """The 16-digit header field for ``deadline`` (seconds since the epoch)."""
    return b"%016d" % int(deadline * 1000)


def encode(deadline: float, kind: str, name: str, payload: bytes) -> bytes:
    """One entry (the Lua scripts build the same bytes by concatenation)."""
    return b"".join(
        (deadline_field(deadline), kind.encode("ascii"), name.encode("ascii"), b"\n", payload)
    )


def parse(data: bytes) -> Entry:
    """Split an entry; ``ValueError`` if it is not one."""
    newline = data.index(b"\n", DEADLINE_DIGITS)
    deadline = int(data[:DEADLINE_DIGITS]) / 1000
    kind = data[DEADLINE_DIGITS : DEADLINE_DIGITS + 1].decode("ascii")
    name = data[DEADLINE_DIGITS + 1 : newline].decode("ascii")
    return Entry(deadline, kind, name, data[newline + 1 :])
