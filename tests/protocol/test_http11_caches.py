"""The validation caches of the HTTP/1.1 reader and writer change speed only, never results.

``connection._valid_hosts`` remembers Host values that passed the Host regex;
``writer._checked_lines`` remembers response field lines that passed the
field-line regex. Every test checks that a cached value is still handled
exactly like an uncached one, and that anything invalid is still rejected.
"""

from __future__ import annotations

import pytest

from bayou.protocol.errors import LocalProtocolError, RemoteProtocolError
from bayou.protocol.http11 import connection as connection_module
from bayou.protocol.http11 import writer as writer_module
from bayou.protocol.http11.connection import ServerConnection
from bayou.protocol.http11.events import Data, EndOfMessage, Request


def _request(conn: ServerConnection, head: bytes) -> Request:
    conn.receive_data(head)
    event = conn.next_event()
    assert isinstance(event, Request)
    assert isinstance(conn.next_event(), EndOfMessage)
    return event


def _response(headers: list[tuple[bytes, bytes]], body: bytes = b"ok") -> bytes:
    conn = ServerConnection()
    request = _request(conn, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    conn.start_response(request, 200, headers)
    return conn.send_body(body)


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    connection_module._valid_hosts.clear()
    writer_module._checked_lines.clear()


def test_invalid_host_rejected_after_a_valid_one_is_cached() -> None:
    """A valid Host is accepted twice on one connection; an invalid Host on the
    next request is still rejected with 400 (the cache holds only valid values)."""
    conn = ServerConnection()
    head = b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
    assert _request(conn, head).target == b"/"
    assert b"example.com:8080" in connection_module._valid_hosts
    assert _request(conn, head).target == b"/"
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 400
    assert b"exa mple.com" not in connection_module._valid_hosts


def test_cached_host_still_subject_to_the_other_checks() -> None:
    """A cached Host does not skip the other request checks: CONNECT is still 501,
    and a request with a body is still framed by its Content-Length."""
    conn = ServerConnection()
    _request(conn, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    conn.receive_data(b"CONNECT / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status_hint == 501

    conn = ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi")
    request = conn.next_event()
    assert isinstance(request, Request)
    assert conn.next_event() == Data(b"hi")
    assert isinstance(conn.next_event(), EndOfMessage)


def test_http10_request_with_cached_host_is_not_keep_alive() -> None:
    """The fast path for a cached Host keeps the HTTP/1.0 rule: no keep-alive
    without ``Connection: keep-alive``."""
    conn = ServerConnection()
    _request(conn, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    conn2 = ServerConnection()
    request = _request(conn2, b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
    assert request.http_version == "1.0"
    assert request.keep_alive is False


def test_cached_response_line_gives_the_same_bytes() -> None:
    """The same headers produce byte-identical heads (apart from Date) whether
    their lines are cached or not."""
    headers = [(b"Content-Type", b"text/plain"), (b"X-Thing", b"a\tb")]
    first = _response(headers)
    assert b"Content-Type: text/plain\r\n" in writer_module._checked_lines
    second = _response(headers)
    strip_date = [line for line in first.split(b"\r\n") if not line.startswith(b"date:")]
    assert strip_date == [line for line in second.split(b"\r\n") if not line.startswith(b"date:")]


def test_injection_rejected_after_a_similar_line_is_cached() -> None:
    """A cached valid value does not make a value with CR/LF acceptable."""
    _response([(b"x-a", b"1")])
    with pytest.raises(LocalProtocolError):
        _response([(b"x-a", b"1\r\nset-cookie: evil=1")])
    with pytest.raises(LocalProtocolError):
        _response([(b"x-a", b"1\n")])


def test_name_containing_colon_is_not_cached_as_another_field() -> None:
    """``(b"date: x", b"y")`` and ``(b"date", b"x: y")`` make the same line: the
    first is not a Date field (a server Date is still added), the second is.
    Caching either must not change how the other is treated, in any order."""
    for order in (
        ([(b"date: x", b"y")], [(b"date", b"x: y")]),
        (
            [(b"date", b"x: y")],
            [(b"date: x", b"y")],
        ),
    ):
        writer_module._checked_lines.clear()
        for headers in order:
            out = _response(headers)
            date_lines = [line for line in out.split(b"\r\n") if line.lower().startswith(b"date")]
            expected = 1 if headers[0][0] == b"date" else 2
            assert len(date_lines) == expected, (headers, out)


def test_special_fields_keep_their_meaning_when_cached() -> None:
    """A cached ``connection: close`` line still closes; a cached
    ``content-length`` line still frames (and checks) the body."""
    for _ in range(2):
        out = _response([(b"connection", b"close")])
        assert b"connection: close\r\n" in out
    for _ in range(2):
        out = _response([(b"content-length", b"2")], b"ok")
        assert out.count(b"content-length: 2\r\n") == 1
        assert out.endswith(b"\r\n\r\nok")
    conn = ServerConnection()
    request = _request(conn, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    conn.start_response(request, 200, [(b"content-length", b"2")])
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"too long")


def test_cache_is_bounded_and_skips_cookies() -> None:
    """The line cache never grows past its bound, and Set-Cookie lines are not kept."""
    for i in range(writer_module._CHECKED_LINES_MAX + 50):
        _response([(b"x-n", b"%d" % i)])
        assert len(writer_module._checked_lines) <= writer_module._CHECKED_LINES_MAX
    writer_module._checked_lines.clear()
    _response([(b"set-cookie", b"session=secret")])
    assert not any(b"secret" in line for line in writer_module._checked_lines)
    long_value = b"v" * (writer_module._CHECKED_LINE_MAX_LEN + 1)
    _response([(b"x-long", long_value)])
    assert not any(long_value in line for line in writer_module._checked_lines)


def test_host_cache_is_bounded() -> None:
    """The Host cache never grows past its bound."""
    for i in range(connection_module._VALID_HOSTS_MAX + 50):
        conn = ServerConnection()
        _request(conn, b"GET / HTTP/1.1\r\nHost: h%d.example\r\n\r\n" % i)
        assert len(connection_module._valid_hosts) <= connection_module._VALID_HOSTS_MAX
