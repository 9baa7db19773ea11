"""Client address and scheme from a trusted reverse proxy's headers.

``X-Forwarded-For`` (or ``config.proxy_headers_host``) gives the client
address, ``X-Forwarded-Port`` (or ``config.proxy_headers_port``) the client
port (daphne's semantics), ``X-Forwarded-Proto`` the scheme. They are only
believed when the TCP peer is in ``config.forwarded_allow_ips`` (addresses or
networks; ``"*"`` trusts everyone; UNIX-socket peers are always trusted, as
only local processes can reach them).

With several proxies, ``X-Forwarded-For`` is read from the right: the first
address that is not itself a trusted proxy is the client. A header with an
entry that is not an IP address (optionally with a port) is ignored as a
whole, as is a port that is not an ASCII decimal number below 65536.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["ProxyHeaders"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class ProxyHeaders:
    """Resolved once per server from the config; used per connection and request."""

    def __init__(
        self,
        enabled: bool,
        forwarded_allow_ips: Iterable[str] | str,
        host_header: str | None = None,
        port_header: str | None = None,
    ) -> None:
        self.enabled = enabled or bool(host_header)
        if isinstance(forwarded_allow_ips, str):
            forwarded_allow_ips = forwarded_allow_ips.split(",")
        entries = [e.strip() for e in forwarded_allow_ips if e.strip()]
        self.trust_all = "*" in entries
        self._networks: list[_Network] = []
        self._literals: set[str] = set()
        for entry in entries:
            if entry == "*":
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._literals.add(entry)  # e.g. a hostname or "unix:" as given
        self.for_header = (host_header or "x-forwarded-for").lower().encode("latin-1")
        self.port_header = (port_header or "x-forwarded-port").lower().encode("latin-1")
        self.proto_header = b"x-forwarded-proto"

    def is_trusted(self, host: str | None) -> bool:
        """Whether a peer at ``host`` (None: a UNIX socket) may set proxy headers."""
        if not self.enabled:
            return False
        if self.trust_all or host is None:
            return True
        if host in self._literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def resolve(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
        scheme: str,
    ) -> tuple[tuple[str, int] | None, str]:
        """``(client, scheme)`` after applying the headers (call only for trusted peers).

        ``scheme`` is ``"http"`` or ``"https"``; the caller maps it to ws/wss.
        """
        forwarded: list[str] = []
        port: int | None = None
        proto: str | None = None
        for name, value in headers:
            if name == self.for_header:
                forwarded.extend(v.strip() for v in value.decode("latin-1").split(","))
            elif name == self.port_header:
                text = value.decode("latin-1").split(",")[-1].strip()
                # isascii: str.isdigit() also accepts e.g. "²" (0xB2 in latin-1).
                if text.isascii() and text.isdigit() and int(text) < 65536:
                    port = int(text)
            elif name == self.proto_header:
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        if proto in _SCHEMES:
            scheme = _SCHEMES[proto]
        addresses = _addresses(forwarded)
        if addresses:
            chosen = addresses[0]
            for address in reversed(addresses):
                if not self.is_trusted(address):
                    chosen = address
                    break
            client = (chosen, port if port is not None else 0)
        elif port is not None and client is not None:
            client = (client[0], port)
        return client, scheme


def _host_of(entry: str) -> str:
    """The address part of an X-Forwarded-For entry (``[::1]:80``, ``1.2.3.4:5``, ``::1``)."""
    if entry.startswith("["):
        return entry[1:].split("]", 1)[0]
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


def _addresses(entries: list[str]) -> list[str]:
    """The IP addresses of X-Forwarded-For entries (empty entries skipped);
    ``[]`` when any entry is not an IP address (the header is not believed)."""
    out: list[str] = []
    for entry in entries:
        if not entry:
            continue
        try:
            out.append(str(ipaddress.ip_address(_host_of(entry))))
        except ValueError:
            return []
    return out
