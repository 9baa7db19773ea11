"""``HttpCommunicator``: one HTTP request against an ASGI application, no server."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from bayou.testing.application import ApplicationCommunicator

__all__ = ["HttpCommunicator"]


def normalize_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """Headers as the ASGI spec wants them: lower-cased byte names, byte values.

    ``str`` names and values are accepted (encoded as latin-1), so tests may
    write ``[("Cookie", "a=b")]`` as well as ``[(b"cookie", b"a=b")]``.
    """
    result: list[tuple[bytes, bytes]] = []
    for name, value in headers or ():
        raw_name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        raw_value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        result.append((raw_name.lower(), raw_value))
    return result


def split_path(path: str) -> tuple[str, bytes, bytes]:
    """``(path, raw_path, query_string)`` for a test path such as ``/a%20b/?x=1``."""
    parts = urlsplit(path)
    raw = parts.path or "/"
    return unquote(raw), raw.encode("utf-8"), parts.query.encode("utf-8")


class HttpCommunicator(ApplicationCommunicator):
    """Send one HTTP request to ``application`` and collect the response.

    ``HttpCommunicator(application, method, path, body=b"", headers=None)``;
    the scope is a complete ASGI HTTP scope (``type``, ``asgi``,
    ``http_version="1.1"``, ``method`` upper-cased, ``scheme``, unquoted
    ``path``, ``raw_path``, ``query_string``, ``root_path``, ``headers``).
    """

    def __init__(
        self,
        application: Any,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Any = None,
    ) -> None:
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        decoded_path, raw_path, query_string = split_path(path)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.5"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": decoded_path,
            "raw_path": raw_path,
            "query_string": query_string,
            "root_path": "",
            "headers": normalize_headers(headers),
        }
        self.body = body
        self.sent_request = False
        super().__init__(application, scope)  # type: ignore[no-untyped-call]

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:  # noqa: ASYNC109
        """Send the request (once) and return ``{"status", "headers", "body"}``.

        Body chunks (``more_body``) are joined. Any other key of the
        ``http.response.start`` message (e.g. ``trailers``) is kept.
        """
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})
        start = await self.receive_output(timeout)
        assert start["type"] == "http.response.start", (
            f"Expected type 'http.response.start', but was '{start['type']}'"
        )
        response = {key: value for key, value in start.items() if key != "type"}
        response.setdefault("headers", [])
        chunks: list[bytes] = []
        while True:
            message = await self.receive_output(timeout)
            assert message["type"] == "http.response.body", (
                f"Expected type 'http.response.body', but was '{message['type']}'"
            )
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        response["body"] = b"".join(chunks)
        return response
