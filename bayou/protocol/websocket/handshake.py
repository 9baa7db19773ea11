"""The opening handshake (RFC 6455 §4.2), validated from an already parsed request.

HTTP is parsed once by :mod:`bayou.protocol.http11`; this module only checks
the upgrade-specific parts of the resulting :class:`Request` and writes the
``101`` (or the refusal) bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from bayou.protocol.errors import RemoteProtocolError
from bayou.protocol.http11.events import Request
from bayou.protocol.http11.writer import date_line, status_line

__all__ = [
    "Handshake",
    "HandshakeError",
    "accept_key",
    "build_accept_response",
    "build_http_response",
    "parse_extensions",
    "split_tokens",
    "validate_handshake",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(RemoteProtocolError):
    """The request is not a valid WebSocket upgrade.

    ``status_hint`` is 400 or 426; ``headers`` are the extra response headers
    (``Sec-WebSocket-Version: 13`` for 426).
    """

    def __init__(
        self, message: str, status_hint: int = 400, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message, status_hint)
        self.headers = headers or []


@dataclass(slots=True)
class Handshake:
    """What a valid upgrade request asked for."""

    key: bytes
    subprotocols: list[str] = field(default_factory=list)
    extensions: list[tuple[str, list[tuple[str, str | None]]]] = field(default_factory=list)


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def split_tokens(values: list[bytes]) -> list[str]:
    """Comma-separated header values (possibly repeated) -> stripped, non-empty items."""
    out: list[str] = []
    for value in values:
        for item in value.decode("latin-1").split(","):
            item = item.strip()
            if item:
                out.append(item)
    return out


def parse_extensions(values: list[bytes]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """``Sec-WebSocket-Extensions`` -> ``[(name, [(param, value-or-None), ...]), ...]``.

    Names are lower-cased; quoted values are unquoted. A malformed item raises
    HandshakeError (400).
    """
    out: list[tuple[str, list[tuple[str, str | None]]]] = []
    for item in split_tokens(values):
        name, *raw_params = (part.strip() for part in item.split(";"))
        if not name or not _is_token(name):
            raise HandshakeError(f"invalid extension {item!r}")
        params: list[tuple[str, str | None]] = []
        for raw in raw_params:
            pname, eq, pvalue = raw.partition("=")
            pname = pname.strip().lower()
            if not _is_token(pname):
                raise HandshakeError(f"invalid extension parameter {raw!r}")
            if not eq:
                params.append((pname, None))
                continue
            pvalue = pvalue.strip()
            if len(pvalue) >= 2 and pvalue[0] == pvalue[-1] == '"':
                pvalue = pvalue[1:-1]
            if not _is_token(pvalue):
                raise HandshakeError(f"invalid extension parameter {raw!r}")
            params.append((pname, pvalue))
        out.append((name.lower(), params))
    return out


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(s: str) -> bool:
    return bool(s) and all(c in _TCHAR for c in s)


def validate_handshake(request: Request) -> Handshake:
    """Check ``request`` is a WebSocket upgrade we can answer.

    Raises HandshakeError with ``status_hint`` 426 (and ``Sec-WebSocket-Version:
    13``) for a missing or unsupported version, 400 for everything else: method
    other than GET, HTTP/1.0, missing ``Upgrade: websocket`` / ``Connection:
    upgrade`` tokens, a key that is not 16 base64-encoded bytes, a request body
    (its bytes would otherwise be read as WebSocket frames).
    """
    if request.method != b"GET":
        raise HandshakeError("WebSocket upgrade requires GET")
    if request.http_version != "1.1":
        raise HandshakeError("WebSocket upgrade requires HTTP/1.1")
    connection: list[bytes] = []
    upgrade: list[bytes] = []
    keys: list[bytes] = []
    versions: list[bytes] = []
    protocols: list[bytes] = []
    extensions: list[bytes] = []
    for name, value in request.headers:
        if name == b"connection":
            connection.append(value)
        elif name == b"upgrade":
            upgrade.append(value)
        elif name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            versions.append(value)
        elif name == b"sec-websocket-protocol":
            protocols.append(value)
        elif name == b"sec-websocket-extensions":
            extensions.append(value)
        elif name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            raise HandshakeError("a WebSocket upgrade request must not have a body")
    if "upgrade" not in (t.lower() for t in split_tokens(connection)):
        raise HandshakeError("missing 'Connection: upgrade'")
    if "websocket" not in (t.lower() for t in split_tokens(upgrade)):
        raise HandshakeError("missing 'Upgrade: websocket'")
    if len(versions) != 1 or versions[0].strip() != b"13":
        raise HandshakeError(
            "unsupported Sec-WebSocket-Version", 426, [(b"Sec-WebSocket-Version", b"13")]
        )
    if len(keys) != 1:
        raise HandshakeError("missing or repeated Sec-WebSocket-Key")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError("Sec-WebSocket-Key is not 16 base64-encoded bytes")
    return Handshake(
        key=key,
        subprotocols=split_tokens(protocols),
        extensions=parse_extensions(extensions),
    )


def build_accept_response(
    key: bytes,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """The ``101 Switching Protocols`` response head for ``key``, with a ``Date``.

    ``headers`` (e.g. the application's, a ``Server`` header) are appended as
    given: the caller validates them (``http11.writer.check_header``).
    """
    lines = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n",
        date_line(),
    ]
    if subprotocol:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1") + b"\r\n")
    if extensions:
        lines.append(b"Sec-WebSocket-Extensions: " + extensions.encode("latin-1") + b"\r\n")
    for name, value in headers or ():
        lines.append(name + b": " + value + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def build_http_response(
    status: int, headers: list[tuple[bytes, bytes]] | None = None, body: bytes | None = b""
) -> bytes:
    """A plain HTTP/1.1 response that ends the connection (refusals, denials).

    With ``body=None`` only the head is returned and no Content-Length is
    added: the caller streams the body and then closes the connection. A
    ``Date`` is added unless ``headers`` has one; a ``Connection`` header in
    ``headers`` is replaced by ``Connection: close``. The caller validates
    ``headers`` (``http11.writer.check_header``).
    """
    head = [status_line(status)]
    has_length = has_date = False
    for name, value in headers or ():
        lower = name.lower()
        if lower == b"content-length":
            has_length = True
        elif lower == b"date":
            has_date = True
        elif lower == b"connection":
            continue
        head.append(name + b": " + value + b"\r\n")
    if not has_date:
        head.append(date_line())
    if body is not None and not has_length:
        head.append(b"Content-Length: %d\r\n" % len(body))
    head.append(b"Connection: close\r\n\r\n")
    return b"".join(head) + (body or b"")
