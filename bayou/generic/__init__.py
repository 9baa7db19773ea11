"""Generic consumers: WebSocket (:mod:`.websocket`), HTTP (:mod:`.http`) and SSE (:mod:`.sse`).

Import from the submodules, as with ``channels.generic``.
"""

__all__: list[str] = []
