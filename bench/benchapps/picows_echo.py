"""Bare picows echo server: the floor for ws-echo (no ASGI, no app task per connection).

Usage: python -m benchapps.picows_echo --port N  (always binds 127.0.0.1)
"""

from __future__ import annotations

import argparse
import asyncio

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class _Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())


def _factory(request: WSUpgradeRequest) -> WSListener:
    return _Echo()


async def _main(port: int) -> None:
    server = await ws_create_server(_factory, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_main(args.port))
    except ImportError:
        asyncio.run(_main(args.port))


if __name__ == "__main__":
    main()
