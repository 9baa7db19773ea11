"""The WebSocket consumers of the demo: a chat room and a price ticker."""

from __future__ import annotations

from typing import Any

from bayou.generic.websocket import AsyncJsonWebsocketConsumer

from chat.ticker import COINS, feed, group_name

MAX_MESSAGE_LENGTH = 2000


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """One connection to a chat room; everyone in the room gets every message.

    Only logged-in users may join (anonymous handshakes are refused with 403).
    Client -> server: ``{"message": "hi"}``.
    Server -> client: ``{"message": "hi", "username": "demo"}``.
    """

    room_group_name: str | None = None

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            # Closing before accept() rejects the handshake.
            await self.close()
            return
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.room_group_name is not None:
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        message = content.get("message") if isinstance(content, dict) else None
        if not isinstance(message, str) or not message.strip():
            await self.send_json({"error": 'expected {"message": "<text>"}'})
            return
        await self.channel_layer.group_send(
            self.room_group_name,
            {
                # "chat.message" is delivered to chat_message() on every member.
                "type": "chat.message",
                "message": message[:MAX_MESSAGE_LENGTH],
                "username": self.scope["user"].get_username(),
            },
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"message": event["message"], "username": event["username"]})


class TickerConsumer(AsyncJsonWebsocketConsumer):
    """Live prices of one coin at a time (the Channels 1 "coin price monitor").

    Server -> client: ``{"coin": "btc", "name": "Bitcoin", "price": 64000.0, "at": 1700000000.0}``
    on connect and then every tick. Client -> server: ``{"coin": "ltc"}`` switches
    coin; the choice is remembered in the session when the browser has one.
    """

    coin: str | None = None

    async def connect(self) -> None:
        coin = "btc"
        session = self.scope.get("session")
        if session is not None and session.session_key:
            remembered = await session.aget("coin", coin)
            if remembered in COINS:
                coin = remembered
        self.coin = coin
        await self.channel_layer.group_add(group_name(coin), self.channel_name)
        await self.accept()
        feed.subscribe()
        await self.send_json(feed.snapshot(coin))

    async def disconnect(self, code: int) -> None:
        if self.coin is not None:
            await self.channel_layer.group_discard(group_name(self.coin), self.channel_name)
            feed.unsubscribe()
            self.coin = None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        coin = content.get("coin") if isinstance(content, dict) else None
        if coin not in COINS:
            await self.send_json({"error": f"unknown coin {coin!r}; one of {sorted(COINS)}"})
            return
        if coin != self.coin:
            if self.coin is not None:
                await self.channel_layer.group_discard(group_name(self.coin), self.channel_name)
            await self.channel_layer.group_add(group_name(coin), self.channel_name)
            self.coin = coin
            session = self.scope.get("session")
            if session is not None and session.session_key:
                await session.aset("coin", coin)
                await session.asave()
        await self.send_json(feed.snapshot(coin))

    async def price_update(self, event: dict[str, Any]) -> None:
        # The group message may be one sent just before a switch; only show ours.
        if event["coin"] == self.coin:
            await self.send_json({key: event[key] for key in ("coin", "name", "price", "at")})
