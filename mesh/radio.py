"""meshd's radio: the connection to the TNC named by `MESHSITE_RF_KISS` (mesh.tnc), kept up
with backoff, and what it hears.

The state of the TNC connection and the stations heard on the air are published in Redis
(`RF_STATE_KEY`, refreshed while meshd runs and gone a few seconds after it stops), where
`/api/status` and the admin read them (`selectors.rf_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from django.conf import settings

from mesh import ax25
from mesh.tnc import TncLink, parse_kiss_url

logger = logging.getLogger(__name__)

RF_STATE_KEY = "meshsite:mesh:rf"
STATE_TTL = 10  # seconds: the published state outlives meshd this long
PUBLISH_EVERY = 2.0
MAX_HEARD = 50


class Radio:
    def __init__(self, *, url: str, redis: Any) -> None:
        self.redis = redis
        self.link = TncLink(parse_kiss_url(url), on_frame=self.on_frame,
                            on_state=lambda _state: self.changed.set(),
                            backoff_min=settings.MESH_RECONNECT_MIN,
                            backoff_max=settings.MESH_RECONNECT_MAX)
        self.changed = asyncio.Event()
        self.heard: dict[str, float] = {}  # AX.25 source -> unix time last heard
        self.undecodable = 0

    def on_frame(self, raw: bytes) -> None:
        try:
            frame = ax25.Frame.decode(raw)
        except ax25.NotUIFrame:
            return  # connected-mode traffic of other stations on the channel
        except ax25.Ax25Error as exc:
            self.undecodable += 1
            logger.debug("undecodable frame from the TNC", extra={"error": str(exc)})
            return
        self.heard[str(frame.source)] = time.time()
        if len(self.heard) > MAX_HEARD:
            oldest = min(self.heard, key=self.heard.__getitem__)
            del self.heard[oldest]
        self.changed.set()

    def state(self) -> dict[str, Any]:
        heard = sorted(self.heard.items(), key=lambda item: -item[1])
        return {**self.link.status(), "undecodable": self.undecodable,
                "heard": [{"source": source, "at": at} for source, at in heard]}

    async def publish(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.set(RF_STATE_KEY, json.dumps(self.state()), ex=STATE_TTL)

    async def run(self) -> None:
        link_task = asyncio.ensure_future(self.link.run())
        try:
            while True:
                await self.publish()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), PUBLISH_EVERY)
                self.changed.clear()
        finally:
            await self.link.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link_task, 5)
            with contextlib.suppress(Exception):
                await self.redis.delete(RF_STATE_KEY)
