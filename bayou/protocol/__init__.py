"""Layer 1: sans-I/O protocol code (HTTP/1.1, WebSocket).

Only the standard library and the HTTP parser library are imported here; no
asyncio, no sockets, no Django. Feed bytes in, get events and bytes out.
"""

__all__: list[str] = []
