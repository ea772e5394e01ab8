"""`/ws/coordinate` (the accepting end of station links) and `/ws/mesh/status` (network mode
pushed to connected clients)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings

from mesh import gossip, linkbus, services
from mesh.links import CLOSE_IDENTITY, HANDSHAKE_TIMEOUT, LinkRefused, LinkSession

NETWORK_GROUP = "mesh-network"
# Every established accepted link of this station: meshd asks them to sync when our trust
# changes, so news travels against the dial direction too, not only on the gossip beat.
LINKS_GROUP = "mesh-links"
GROUP_REFRESH = 3600.0  # re-join well within channels-redis's group expiry (a day)
logger = logging.getLogger(__name__)


class CoordinateConsumer(AsyncWebsocketConsumer):
    """Server role of a station link: every frame goes through `LinkSession`."""

    async def connect(self) -> None:
        await self.accept()
        self._grouped_at: float | None = None
        self._alive_written = 0.0
        self.session = LinkSession(role="server", send_text=self._send_text, close=self._close,
                                   on_established=self._established, on_heard=self._heard)
        self._timer = asyncio.ensure_future(self._handshake_deadline())
        await self.session.start()

    async def _handshake_deadline(self) -> None:
        await asyncio.sleep(HANDSHAKE_TIMEOUT)
        if not self.session.established.is_set() and not self.session.closed:
            await self.session.refuse("timeout", f"no handshake within {HANDSHAKE_TIMEOUT:.0f}s")

    async def _established(self, session: LinkSession) -> None:
        await self._join_links_group()
        try:
            await linkbus.attach(session)
            await linkbus.to_daemon({"type": "link_up", "peer": session.peer_station_id,
                                     "callsign": session.peer_callsign})
        except Exception as exc:
            logger.warning("mesh link not put on the bus", extra={
                "peer": session.peer_station_id, "error": f"{type(exc).__name__}: {exc}"})
        self._alive_written = time.monotonic()
        try:
            await sync_to_async(services.link_accepted)(
                station_id=session.peer_station_id, callsign=session.peer_callsign,
                fingerprint=session.peer_fingerprint, endpoints=session.peer_endpoints,
                channel=self.channel_name or "")
        except Exception as exc:
            logger.warning("mesh accepted link not recorded", extra={
                "peer": session.peer_station_id, "error": f"{type(exc).__name__}: {exc}"})
        await gossip.on_link_established(session)

    async def _join_links_group(self) -> None:
        if self.channel_layer is None:
            return
        self._grouped_at = time.monotonic()
        try:
            await self.channel_layer.group_add(LINKS_GROUP, self.channel_name)
        except Exception as exc:
            self._grouped_at = None
            logger.warning("mesh link group join failed", extra={"error": str(exc)})

    def _heard(self, session: LinkSession) -> None:
        now = time.monotonic()
        if self._grouped_at is not None and now - self._grouped_at > GROUP_REFRESH:
            self._grouped_at = now
            session._spawn(self._join_links_group())
        # meshd counts this link as the peer's heartbeat: refresh it well within suspect time.
        if now - self._alive_written >= settings.MESH_SUSPECT_AFTER / 3:
            self._alive_written = now
            session._spawn(self._mark_alive(session.peer_station_id))

    async def _mark_alive(self, station_id: str) -> None:
        with contextlib.suppress(Exception):
            await sync_to_async(services.accepted_link_heard)(
                station_id=station_id, endpoints=None, channel=self.channel_name or "")

    async def mesh_identity(self, event: dict[str, Any]) -> None:
        """meshd: our own identity changed (claim, hand-over, owner blacklisted). A link whose
        handshake proved another identity than the current one is closed; the peer dials
        again and meets the new one."""
        local = self.session.local
        if local is not None and list(local.identity) != list(event.get("identity") or []):
            await self.session.shutdown(CLOSE_IDENTITY)

    async def mesh_sync(self, event: dict[str, Any]) -> None:
        """meshd: news here (certificates, blacklist, an app's data such as new content).
        Sync in a task of the session: the replies arrive through `receive`, which this
        consumer cannot run while a handler waits."""
        if self.session.established.is_set() and not self.session.closed:
            self.session._spawn(self._sync_link())

    async def _sync_link(self) -> None:  # (not `_sync`: channels reads that attribute)
        try:
            await gossip.sync_round(self.session, peers=False)
        except Exception as exc:
            logger.info("mesh sync failed", extra={"peer": self.session.peer_station_id,
                                                   "role": "server",
                                                   "error": f"{type(exc).__name__}: {exc}"})

    async def _send_text(self, text: str) -> None:
        try:
            await self.send(text_data=text)
        except Exception as exc:  # autobahn's Disconnected: the peer left while we answered
            raise LinkRefused("closed", "the link closed") from exc

    async def _close(self, code: int) -> None:
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.session.receive(text_data if text_data is not None else bytes_data or b"")

    async def disconnect(self, code: int) -> None:
        self._timer.cancel()
        if self._grouped_at is not None and self.channel_layer is not None:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(LINKS_GROUP, self.channel_name)
        session = getattr(self, "session", None)
        if session is not None and session.established.is_set() and session.peer_station_id:
            with contextlib.suppress(Exception):
                await linkbus.detach(session)
                await linkbus.to_daemon({"type": "link_down", "peer": session.peer_station_id})
            with contextlib.suppress(Exception):
                await sync_to_async(services.link_accepted_closed)(
                    station_id=session.peer_station_id, channel=self.channel_name or "")
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
