"""ProxyHeaders: which peers are trusted, and what the X-Forwarded-* headers change."""

from __future__ import annotations

import pytest

from bayou.server.proxy_headers import ProxyHeaders

HEADERS = [
    (b"x-forwarded-for", b"203.0.113.7, 10.0.0.2"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-port", b"4433"),
]


@pytest.mark.parametrize(
    ("allow", "peer", "trusted"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "10.0.0.1", False),
        (["10.0.0.0/8"], "10.1.2.3", True),
        (["::1"], "::1", True),
        ("127.0.0.1, 10.0.0.1", "10.0.0.1", True),
        (["*"], "198.51.100.1", True),
        (["127.0.0.1"], None, True),  # UNIX socket peer
        (["127.0.0.1"], "not-an-ip", False),
    ],
)
def test_trusted_peers(allow: list[str] | str, peer: str | None, trusted: bool) -> None:
    """Only peers in forwarded_allow_ips (addresses, networks, "*") are trusted."""
    assert ProxyHeaders(True, allow).is_trusted(peer) is trusted


def test_disabled_trusts_nobody() -> None:
    """With proxy headers off, no peer is trusted, even with "*"."""
    assert ProxyHeaders(False, ["*"]).is_trusted("127.0.0.1") is False


def test_resolve_rightmost_untrusted_address() -> None:
    """The client is the right-most X-Forwarded-For address that is not a trusted proxy."""
    proxy = ProxyHeaders(True, ["127.0.0.1", "10.0.0.0/8"])
    client, scheme = proxy.resolve(HEADERS, ("127.0.0.1", 5000), "http")
    assert client == ("203.0.113.7", 4433)
    assert scheme == "https"


def test_resolve_all_trusted_takes_leftmost() -> None:
    """When every forwarded address is trusted, the left-most one is the client."""
    proxy = ProxyHeaders(True, ["*"])
    client, _ = proxy.resolve([(b"x-forwarded-for", b"10.0.0.5, 10.0.0.6")], None, "http")
    assert client == ("10.0.0.5", 0)


def test_resolve_ports_and_brackets() -> None:
    """Addresses with ports and bracketed IPv6 are reduced to the address."""
    proxy = ProxyHeaders(True, ["127.0.0.1"])
    client, _ = proxy.resolve([(b"x-forwarded-for", b"[2001:db8::1]:443")], None, "http")
    assert client == ("2001:db8::1", 0)
    client, _ = proxy.resolve([(b"x-forwarded-for", b"192.0.2.1:8080")], None, "http")
    assert client == ("192.0.2.1", 0)


def test_custom_header_names() -> None:
    """proxy_headers_host / _port name the headers used for the client address and port."""
    proxy = ProxyHeaders(False, ["127.0.0.1"], "X-Real-IP", "X-Real-Port")
    assert proxy.enabled
    client, scheme = proxy.resolve(
        [(b"x-real-ip", b"192.0.2.9"), (b"x-real-port", b"81"), *HEADERS], None, "http"
    )
    assert client == ("192.0.2.9", 81)
    assert scheme == "https"


@pytest.mark.parametrize("proto", [b"ftp", b"", b"javascript"])
def test_unknown_proto_ignored(proto: bytes) -> None:
    """An X-Forwarded-Proto other than http/https/ws/wss leaves the scheme alone."""
    proxy = ProxyHeaders(True, ["*"])
    assert proxy.resolve([(b"x-forwarded-proto", proto)], None, "http")[1] == "http"


def test_ws_proto_maps_to_http_schemes() -> None:
    """wss maps to https (the caller turns it back into wss for WebSocket scopes)."""
    proxy = ProxyHeaders(True, ["*"])
    assert proxy.resolve([(b"x-forwarded-proto", b"wss")], None, "http")[1] == "https"


def test_bad_port_ignored() -> None:
    """A non-numeric or out-of-range X-Forwarded-Port is ignored."""
    proxy = ProxyHeaders(True, ["*"])
    for port in (b"abc", b"70000", b"-1"):
        client, _ = proxy.resolve([(b"x-forwarded-port", port)], ("127.0.0.1", 5), "http")
        assert client == ("127.0.0.1", 5)


@pytest.mark.parametrize("port", [b"\xb2", b"\xb9", b"\xb3\xb3", b"-1", b"65536", b"8 0"])
def test_non_ascii_or_bad_port_is_ignored(port: bytes) -> None:
    """A port that is not an ASCII decimal below 65536 (e.g. latin-1 "²") is
    ignored instead of raising."""
    proxy = ProxyHeaders(True, "*")
    assert proxy.resolve([(b"x-forwarded-port", port)], ("127.0.0.1", 5), "http") == (
        ("127.0.0.1", 5),
        "http",
    )


@pytest.mark.parametrize(
    "value",
    [b"evil<script>", b"203.0.113.7, not-an-ip", b"unknown", b"1.2.3.4.5", b"\xb2"],
)
def test_forwarded_for_that_is_not_an_ip_is_ignored(value: bytes) -> None:
    """An X-Forwarded-For entry that is not an IP address makes the server
    ignore the header: the client stays the TCP peer."""
    proxy = ProxyHeaders(True, "*")
    client, _ = proxy.resolve([(b"x-forwarded-for", value)], ("127.0.0.1", 5), "http")
    assert client == ("127.0.0.1", 5)


@pytest.mark.parametrize(
    ("value", "host"),
    [(b"203.0.113.7:8080", "203.0.113.7"), (b"[2001:db8::1]:80", "2001:db8::1"), (b"::1", "::1")],
)
def test_forwarded_for_with_port_or_ipv6(value: bytes, host: str) -> None:
    """IPv4 with a port, bracketed IPv6 with a port, and bare IPv6 are addresses."""
    proxy = ProxyHeaders(True, ["127.0.0.1"])
    client, _ = proxy.resolve([(b"x-forwarded-for", value)], ("127.0.0.1", 5), "http")
    assert client is not None and client[0] == host
