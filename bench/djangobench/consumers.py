"""Echo and group consumers, parametrised by the consumer base class.

Routes (see ``routes``):
  /ws/echo/           echo every text/bytes message back
  /ws/group/<name>/   join group <name>; every group message is sent to the client
  /ws/pub/<name>/     every text message received is group_send to <name> (publisher
                      does not join, so it never receives its own messages)
The group message text is relayed verbatim: the load client embeds a sequence number
and a send timestamp in it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["routes"]


def routes(base: type[Any], path: Any) -> list[Any]:
    """URL patterns for the three consumers built on ``base`` (an AsyncWebsocketConsumer)."""

    class EchoConsumer(base):  # type: ignore[misc]
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            if text_data is not None:
                await self.send(text_data=text_data)
            else:
                await self.send(bytes_data=bytes_data)

    class MemberConsumer(base):  # type: ignore[misc]
        async def connect(self) -> None:
            self.group = self.scope["url_route"]["kwargs"]["name"]
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

        async def bench_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    class PublisherConsumer(base):  # type: ignore[misc]
        async def connect(self) -> None:
            self.group = self.scope["url_route"]["kwargs"]["name"]
            await self.accept()

        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            await self.channel_layer.group_send(
                self.group, {"type": "bench.message", "text": text_data}
            )

    return [
        path("ws/echo/", EchoConsumer.as_asgi()),
        path("ws/group/<str:name>/", MemberConsumer.as_asgi()),
        path("ws/pub/<str:name>/", PublisherConsumer.as_asgi()),
    ]
