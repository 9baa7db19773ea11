"""permessage-deflate (RFC 7692): negotiation and the per-message codec.

The server accepts the first offer it can honour and answers with the
parameters it will use. Incoming messages are inflated with an explicit output
bound so a small compressed message can never expand past the message-size
limit (a "zip bomb" costs at most ``max_size`` bytes of memory).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from bayou.protocol.errors import RemoteProtocolError

__all__ = ["PerMessageDeflate", "negotiate_deflate"]

_TAIL = b"\x00\x00\xff\xff"
_EXTENSION = "permessage-deflate"


@dataclass(frozen=True, slots=True)
class _Params:
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    client_max_window_bits_offered: bool = False


def _parse_offer(params: list[tuple[str, str | None]]) -> _Params | None:
    """Validate one offer's parameters; None when it must be declined (§7.1)."""
    seen: set[str] = set()
    snct = cnct = False
    smwb: int | None = None
    cmwb: int | None = None
    cmwb_offered = False
    for name, value in params:
        if name in seen:
            return None
        seen.add(name)
        if name == "server_no_context_takeover":
            if value is not None:
                return None
            snct = True
        elif name == "client_no_context_takeover":
            if value is not None:
                return None
            cnct = True
        elif name == "server_max_window_bits":
            if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
                return None
            # zlib cannot compress raw deflate with a 256-byte window; decline
            # this offer (the client may list a fallback) rather than lie.
            if int(value) == 8:
                return None
            smwb = int(value)
        elif name == "client_max_window_bits":
            cmwb_offered = True
            if value is not None:
                if not value.isdigit() or not 8 <= int(value) <= 15:
                    return None
                cmwb = int(value)
        else:
            return None
    return _Params(snct, cnct, smwb, cmwb, cmwb_offered)


def negotiate_deflate(
    offers: list[tuple[str, list[tuple[str, str | None]]]],
) -> tuple[PerMessageDeflate, str] | None:
    """Pick the first acceptable permessage-deflate offer.

    Returns the codec and the ``Sec-WebSocket-Extensions`` response value, or
    None when no offer is acceptable (the connection then runs uncompressed).
    """
    for name, params in offers:
        if name != _EXTENSION:
            continue
        p = _parse_offer(params)
        if p is None:
            continue
        response = [_EXTENSION]
        if p.server_no_context_takeover:
            response.append("server_no_context_takeover")
        if p.client_no_context_takeover:
            response.append("client_no_context_takeover")
        if p.server_max_window_bits is not None:
            response.append(f"server_max_window_bits={p.server_max_window_bits}")
        if p.client_max_window_bits is not None:
            response.append(f"client_max_window_bits={p.client_max_window_bits}")
        codec = PerMessageDeflate(
            server_no_context_takeover=p.server_no_context_takeover,
            client_no_context_takeover=p.client_no_context_takeover,
            server_max_window_bits=p.server_max_window_bits or 15,
        )
        return codec, "; ".join(response)
    return None


class PerMessageDeflate:
    """Compressor and decompressor for one connection.

    ``decompress`` is fed the payload of every frame of a compressed message in
    order (``final`` on the last) and returns the inflated bytes of that frame;
    it raises :class:`RemoteProtocolError` (hint 1009) as soon as the message
    would exceed ``max_size`` inflated bytes, and (hint 1007) on corrupt data.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "_inflated",
        "client_no_context_takeover",
        "server_max_window_bits",
        "server_no_context_takeover",
    )

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int = 15,
        level: int = 1,
    ) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        # Level 1 by default: CPU is the scarce resource of a Python server,
        # and on chat-sized JSON it compresses nearly as well as level 6 at a
        # fraction of the cost (level 6 dominated Autobahn's 12.x profile).
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -server_max_window_bits)
        # A 32 KiB window inflates anything a smaller client window produced.
        self._decompressor = zlib.decompressobj(-15)
        self._inflated = 0

    def decompress(self, data: bytes, final: bool, max_size: int) -> bytes:
        d = self._decompressor
        if final:
            data += _TAIL
        try:
            if max_size:
                budget = max_size - self._inflated
                # Ask for one byte more than allowed: getting it proves overflow.
                out = d.decompress(data, budget + 1)
                if len(out) > budget or d.unconsumed_tail:
                    raise RemoteProtocolError("message too big after decompression", 1009)
            else:
                out = d.decompress(data)
        except zlib.error as exc:
            raise RemoteProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if final:
            self._inflated = 0
            # A final deflate block (BFINAL) ends the stream: start afresh.
            if self.client_no_context_takeover or d.eof:
                self._decompressor = zlib.decompressobj(-15)
        else:
            self._inflated += len(out)
        return out

    def compress(self, data: bytes) -> bytes:
        c = self._compressor
        if self.server_no_context_takeover:
            # A full flush empties the window, so the next message cannot refer back.
            out = c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)
        else:
            out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(_TAIL):
            out = out[:-4]
        return out
