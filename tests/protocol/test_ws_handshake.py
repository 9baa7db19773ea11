"""Opening handshake validation and permessage-deflate negotiation (bytes/objects only)."""

from __future__ import annotations

import re

import pytest

from bayou.protocol.http11.events import Request
from bayou.protocol.http11.writer import date_line
from bayou.protocol.websocket import (
    HandshakeError,
    accept_key,
    build_accept_response,
    build_http_response,
    negotiate_deflate,
    validate_handshake,
)
from bayou.protocol.websocket.handshake import parse_extensions

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def request(
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    method: bytes = b"GET",
    version: str = "1.1",
    drop: tuple[bytes, ...] = (),
) -> Request:
    base = [
        (b"host", b"example.com"),
        (b"upgrade", b"websocket"),
        (b"connection", b"keep-alive, Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
    ]
    hs = [(k, v) for k, v in base if k not in drop] + (headers or [])
    return Request(method, b"/chat", version, hs, True, b"websocket")


def test_accept_key_rfc_example() -> None:
    """The RFC 6455 §1.3 example key gives the documented accept value."""
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_handshake() -> None:
    """A valid upgrade yields the key, the subprotocols and the extension offers."""
    hs = validate_handshake(
        request(
            [
                (b"sec-websocket-protocol", b"chat, superchat"),
                (b"sec-websocket-protocol", b"v2"),
                (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
            ]
        )
    )
    assert hs.key == KEY
    assert hs.subprotocols == ["chat", "superchat", "v2"]
    assert hs.extensions == [("permessage-deflate", [("client_max_window_bits", None)])]


@pytest.mark.parametrize(
    ("req", "status"),
    [
        (request(method=b"POST"), 400),
        (request(version="1.0"), 400),
        (request(drop=(b"upgrade",)), 400),
        (request(drop=(b"connection",)), 400),
        (request(drop=(b"sec-websocket-key",)), 400),
        (request(drop=(b"sec-websocket-key",), headers=[(b"sec-websocket-key", b"short")]), 400),
        (request(drop=(b"sec-websocket-key",), headers=[(b"sec-websocket-key", b"!!!!")]), 400),
        (request(headers=[(b"sec-websocket-key", KEY)]), 400),
        (request(drop=(b"sec-websocket-version",)), 426),
        (
            request(drop=(b"sec-websocket-version",), headers=[(b"sec-websocket-version", b"8")]),
            426,
        ),
        (request(headers=[(b"sec-websocket-extensions", b"bad ext")]), 400),
        (request(headers=[(b"content-length", b"5")]), 400),
        (request(headers=[(b"transfer-encoding", b"chunked")]), 400),
    ],
)
def test_invalid_handshakes(req: Request, status: int) -> None:
    """Invalid upgrades raise HandshakeError with 400, or 426 for the version."""
    with pytest.raises(HandshakeError) as info:
        validate_handshake(req)
    assert info.value.status_hint == status
    if status == 426:
        assert (b"Sec-WebSocket-Version", b"13") in info.value.headers


def test_accept_response_bytes() -> None:
    """The 101 response carries accept, subprotocol, extensions and extra headers."""
    out = build_accept_response(
        KEY, subprotocol="chat", extensions="permessage-deflate", headers=[(b"x-a", b"1")]
    )
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert re.search(rb"\r\ndate: [^\r\n]+ GMT\r\n", out)
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in out
    assert b"\r\nSec-WebSocket-Protocol: chat\r\n" in out
    assert b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n" in out
    assert out.endswith(b"x-a: 1\r\n\r\n")


def test_http_response_bytes() -> None:
    """Refusals have a Date, a Content-Length (unless streamed) and close the connection."""
    date = date_line()
    assert build_http_response(403) in (
        b"HTTP/1.1 403 Forbidden\r\n" + d + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        for d in (date, date_line())  # the second may have ticked
    )
    streamed = build_http_response(499, [(b"x", b"y")], None)
    assert re.fullmatch(
        rb"HTTP/1.1 499 \r\nx: y\r\ndate: [^\r\n]+ GMT\r\nConnection: close\r\n\r\n", streamed
    )


def test_http_response_keeps_the_apps_date() -> None:
    """A Date given by the caller is not duplicated; a Connection header is replaced."""
    out = build_http_response(401, [(b"Date", b"x"), (b"connection", b"keep-alive")], b"")
    assert out.lower().count(b"date:") == 1
    assert b"keep-alive" not in out and out.endswith(b"Connection: close\r\n\r\n")


def test_upgrade_with_empty_body_is_accepted() -> None:
    """``Content-Length: 0`` on an upgrade request is not a body."""
    assert validate_handshake(request([(b"content-length", b"0")])).key == KEY


def test_parse_extensions_quoted_values() -> None:
    """Parameters may be quoted; names are lower-cased."""
    assert parse_extensions([b'Foo; A="12", bar']) == [("foo", [("a", "12")]), ("bar", [])]


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        (b"permessage-deflate", "permessage-deflate"),
        (b"permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            b"permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
        ),
        # First offer unacceptable (window 8 / unknown param), the fallback is taken.
        (b"permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate"),
        (b"permessage-deflate; foo, permessage-deflate", "permessage-deflate"),
        (b"x-webkit-deflate-frame", None),
        (b"permessage-deflate; server_max_window_bits", None),
        (b"permessage-deflate; server_max_window_bits=16", None),
        (b"permessage-deflate; client_max_window_bits=7", None),
        (b"permessage-deflate; server_no_context_takeover=1", None),
        (b"permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    ],
)
def test_deflate_negotiation(offer: bytes, response: str | None) -> None:
    """The first acceptable offer is answered with the parameters in use."""
    result = negotiate_deflate(parse_extensions([offer]))
    if response is None:
        assert result is None
    else:
        assert result is not None
        assert result[1] == response


def test_deflate_negotiated_parameters_are_used() -> None:
    """Negotiated flags reach the codec."""
    result = negotiate_deflate(
        parse_extensions(
            [b"permessage-deflate; server_no_context_takeover; server_max_window_bits=9"]
        )
    )
    assert result is not None
    codec = result[0]
    assert codec.server_no_context_takeover and codec.server_max_window_bits == 9
