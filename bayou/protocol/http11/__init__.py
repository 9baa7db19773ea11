"""Sans-I/O HTTP/1.1 (RFC 9112) for the server side."""

from bayou.protocol.http11.events import Request

__all__ = ["Request"]
