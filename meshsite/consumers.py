"""`/ws/live`: the PWA's live view. On connect the station's snapshot (meshsite.live), then the
snapshot again whenever it changes: at once on a network-mode change (the mesh app's
`mesh-network` group), and otherwise as a server-side check every MESHSITE_LIVE_INTERVAL
seconds that sends only when something differs. Clients never poll; they only listen."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from meshsite.live import station_snapshot

NETWORK_GROUP = "mesh-network"


def _urls(scope: dict[str, Any]) -> tuple[str, str]:
    if settings.MESHSITE_PUBLIC_URL:
        endpoint = settings.MESHSITE_PUBLIC_URL.rstrip("/")
    else:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1") or "localhost"
        scheme = "https" if scope.get("scheme") == "wss" else "http"
        endpoint = f"{scheme}://{host}"
    ws = "wss" if endpoint.startswith("https") else "ws"
    return endpoint, ws + endpoint.removeprefix("https").removeprefix("http") + "/ws/signal"


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self._last = ""
        self._endpoint, self._signaling = _urls(self.scope)
        if self.channel_layer is not None:
            await self.channel_layer.group_add(NETWORK_GROUP, self.channel_name)
        await self.accept()
        await self._push()
        self._ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(BaseException):
                await ticker
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(NETWORK_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"type": "ERROR", "error": "read_only",
                              "detail": "this socket only pushes the station's state"})

    async def network_mode(self, event: dict[str, Any]) -> None:
        await self._push()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(settings.MESHSITE_LIVE_INTERVAL)
            await self._push()

    async def _push(self) -> None:
        snapshot = await sync_to_async(station_snapshot)(endpoint=self._endpoint,
                                                         signaling_url=self._signaling)
        text = json.dumps(snapshot, sort_keys=True, default=str)
        if text != self._last:
            self._last = text
            await self.send(text_data=json.dumps({"type": "SNAPSHOT", "station": snapshot},
                                                 default=str))
