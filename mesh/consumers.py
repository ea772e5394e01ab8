"""`/ws/coordinate` (the accepting end of station links) and `/ws/mesh/status` (network mode
pushed to connected clients)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

from mesh import gossip
from mesh.links import HANDSHAKE_TIMEOUT, LinkSession

NETWORK_GROUP = "mesh-network"


class CoordinateConsumer(AsyncWebsocketConsumer):
    """Server role of a station link: every frame goes through `LinkSession`."""

    async def connect(self) -> None:
        await self.accept()
        self.session = LinkSession(role="server", send_text=self._send_text, close=self._close,
                                   on_established=gossip.on_link_established)
        self._timer = asyncio.ensure_future(self._handshake_deadline())
        await self.session.start()

    async def _handshake_deadline(self) -> None:
        await asyncio.sleep(HANDSHAKE_TIMEOUT)
        if not self.session.established.is_set() and not self.session.closed:
            await self.session.refuse("timeout", f"no handshake within {HANDSHAKE_TIMEOUT:.0f}s")

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def _close(self, code: int) -> None:
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.session.receive(text_data if text_data is not None else bytes_data or b"")

    async def disconnect(self, code: int) -> None:
        self._timer.cancel()
        session = getattr(self, "session", None)
        if session is not None:
            session.closed = True
            for task in list(session._tasks):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


class NetworkStatusConsumer(AsyncJsonWebsocketConsumer):
    """Pushes `{"type": "NETWORK_MODE", "mode": ..., "previous": ...}` on every change, and
    the current mode on connect. Other apps can push the same event to their clients by joining
    the channel-layer group `mesh-network` (event type `network.mode`)."""

    async def connect(self) -> None:
        from asgiref.sync import sync_to_async

        from mesh import selectors

        await self.channel_layer.group_add(NETWORK_GROUP, self.channel_name)
        await self.accept()
        mode = await sync_to_async(selectors.network_mode_get)()
        await self.send_json({"type": "NETWORK_MODE", "mode": mode["mode"], "previous": None})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(NETWORK_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"type": "ERROR", "error": "read_only",
                              "detail": "this socket only pushes the network mode"})

    async def network_mode(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "NETWORK_MODE", "mode": event["mode"],
                              "previous": event.get("previous")})
