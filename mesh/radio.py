"""meshd's radio: the TNC named by `MESHSITE_RF_KISS` (mesh.tnc, kept up with backoff) and the
RF link layer over it (mesh.rf_link: Part 97 identification, air-time budget, fragments).

- The station transmits only while claimed, as the owner's callsign with `MESHSITE_RF_SSID`
  (an owner callsign that AX.25 cannot carry, e.g. with a `/`, keeps it silent, logged).
- Its ID beacon (at least every `MESHSITE_RF_ID_INTERVAL`) carries its presence, signed with
  the station key: key, owner callsign, owner certificate fingerprint and the catalog's digest
  (`registry.presence_digest`).
- A beacon heard, signed by the key it carries and sent under the callsign it names, makes its
  station a peer with discovery method `rf` and an RF link (`services.peer_heard_on_air`),
  active while heard: silence is counted with `MESHSITE_MESH_RF_SUSPECT_AFTER` /
  `MESHSITE_MESH_RF_UNREACHABLE_AFTER` (minutes).
- The TNC's persistence and the background air-time budget follow the number of stations
  heard in the last 10 minutes (`rf_link.persistence_for`, a KISS parameter frame when it
  changes; `rf_link.share_for`): the more stations wait for the channel, the less likely
  each keys up in a slot, and the smaller each one's part of it.

The state of the TNC connection, the link layer's air time per kind of traffic and the stations
heard are published in Redis (`RF_STATE_KEY`, refreshed while meshd runs and gone a few
seconds after it stops) for `/api/status` and the admin (`selectors.rf_status`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings

from mesh import ax25, kiss, registry, rf_codec, services, trust
from mesh.dbcall import db as _db
from mesh.rf_link import (
    COLD_START,
    COLD_START_OTHERS,
    HEARD_WINDOW,
    RfLink,
    persistence_for,
)
from mesh.rf_neighbours import RfNeighbours
from mesh.tnc import TncLink, parse_kiss_url

if TYPE_CHECKING:
    from mesh.daemon import MeshDaemon

logger = logging.getLogger(__name__)

RF_STATE_KEY = "meshsite:mesh:rf"
STATE_TTL = 10  # seconds: the published state outlives meshd this long
PUBLISH_EVERY = 2.0
DIGEST_EVERY = 30.0
MAX_HEARD = 50
BEACON_WINDOW_MS = 10 * 60 * 1000  # a beacon older or newer than this is not presence



class Radio:
    def __init__(self, *, url: str, redis: Any, daemon: MeshDaemon | None = None) -> None:
        self.redis = redis
        self.daemon = daemon
        self.changed = asyncio.Event()
        self.link = TncLink(parse_kiss_url(url), on_frame=self.on_frame,
                            on_state=lambda _state: self.changed.set(),
                            backoff_min=settings.MESH_RECONNECT_MIN,
                            backoff_max=settings.MESH_RECONNECT_MAX)
        self.rf = RfLink(send_frame=self.link.send, identity=self.identity,
                         bitrate=settings.RF_BITRATE, share=settings.RF_AIRTIME_SHARE,
                         id_interval=settings.RF_ID_INTERVAL, beacon_body=self.beacon_body,
                         on_message=self.on_message, on_beacon=self.on_beacon,
                         ready=lambda: self.link.connected)
        self.heard: dict[str, float] = {}  # AX.25 source -> unix time last heard
        self.persistence = persistence_for(0)  # the TNC's, set as stations are heard
        self.started = time.monotonic()
        self.undecodable = 0
        self.digest = b""
        self.refused_beacons = 0
        self.messages_in = 0
        self._unusable_callsign = ""
        self.neighbours = RfNeighbours(self)

    # -- who we are on the air ---------------------------------------------------------------

    def identity(self) -> ax25.Address | None:
        local = self.daemon.local if self.daemon is not None else None
        if local is None or local.credential is None or not local.callsign:
            return None
        try:
            return ax25.Address(local.callsign.upper(), settings.RF_SSID)
        except ax25.Ax25Error as exc:
            if self._unusable_callsign != local.callsign:
                self._unusable_callsign = local.callsign
                logger.error("radio silent: the owner's callsign cannot be an AX.25 address",
                             extra={"callsign": local.callsign, "error": str(exc)})
            return None

    def beacon_body(self) -> bytes:
        local = self.daemon.local if self.daemon is not None else None
        if local is None or local.credential is None:
            raise rf_codec.RfCodecError("no credential: an unclaimed station sends no beacon")
        public_key = base64.b64decode(local.credential["publicKey"])
        return rf_codec.beacon_encode(public_key=public_key, callsign=local.callsign.upper(),
                                      fingerprint=local.fingerprint, digest=self.digest,
                                      ts=int(time.time() * 1000), sign=trust.sign)

    # -- what we hear ------------------------------------------------------------------------

    async def on_frame(self, raw: bytes) -> None:
        try:
            frame = ax25.Frame.decode(raw)
        except ax25.NotUIFrame:
            return  # connected-mode traffic of other stations on the channel
        except ax25.Ax25Error as exc:
            self.undecodable += 1
            logger.debug("undecodable frame from the TNC", extra={"error": str(exc)})
            return
        source = str(frame.source)
        new = source not in self.heard
        self.heard[source] = time.time()
        if len(self.heard) > MAX_HEARD:
            del self.heard[min(self.heard, key=self.heard.__getitem__)]
        if new:
            await self.tune_access()
        self.changed.set()
        await self.rf.on_frame(raw)

    async def tune_access(self) -> None:
        """Set the TNC's persistence and our background budget to the number of stations
        heard lately (`rf_link.persistence_for`, `rf_link.share_for`): fewer collisions when
        several wait for the channel, and together they leave it idle part of the time."""
        me = self.identity()
        since = time.time() - HEARD_WINDOW
        others = sum(1 for source, at in self.heard.items()
                     if at >= since and (me is None or source != str(me)))
        if time.monotonic() - self.started < COLD_START:
            others = max(others, COLD_START_OTHERS)
        self.persistence = persistence_for(others)
        self.rf.channel_shared_with(others)
        await self.link.set_parameter(kiss.Command.PERSISTENCE, self.persistence)

    async def on_beacon(self, source: ax25.Address, body: bytes) -> None:
        try:
            beacon = rf_codec.beacon_decode(body, now_ms=int(time.time() * 1000),
                                            window_ms=BEACON_WINDOW_MS)
        except rf_codec.RfCodecError as exc:
            self.refused_beacons += 1
            logger.info("RF beacon refused", extra={"source": str(source), "error": str(exc)})
            return
        if beacon.callsign != source.callsign:
            self.refused_beacons += 1
            logger.warning("RF beacon refused: it names another callsign than its sender", extra={
                "source": str(source), "callsign": beacon.callsign})
            return
        if self.daemon is not None and self.daemon.local is not None and \
                beacon.station_id == self.daemon.local.station_id:
            return
        if await _db(trust.is_blacklisted)(beacon.fingerprint):
            self.refused_beacons += 1
            return
        peer, new = await _db(services.peer_heard_on_air)(
            station_id=beacon.station_id, callsign=beacon.callsign,
            fingerprint=beacon.fingerprint, address=str(source))
        if self.daemon is None:
            return
        if new or peer.pk not in self.daemon.peers:
            await self.daemon.reload_peers()
        known = self.daemon.peers.get(peer.pk)
        if known is not None:
            await self.daemon.heard(known, None)
        await self.neighbours.on_beacon(beacon, ax25.Address(source.callsign, source.ssid))

    async def on_message(self, source: ax25.Address, message: bytes) -> None:
        self.messages_in += 1
        try:
            envelope = rf_codec.decode_message(message)
        except rf_codec.RfCodecError as exc:
            logger.info("RF message refused", extra={"source": str(source), "error": str(exc)})
            return
        logger.debug("RF message heard", extra={"source": str(source),
                                                "type": envelope.get("type", "")})
        await self.neighbours.on_message(source, envelope)

    # -- running -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        heard = sorted(self.heard.items(), key=lambda item: -item[1])
        me = self.identity()
        return {**self.link.status(), **self.rf.status(), **self.neighbours.status(),
                "undecodable": self.undecodable, "persistence": self.persistence,
                "refusedBeacons": self.refused_beacons, "messagesIn": self.messages_in,
                "source": str(me) if me else None,
                "heard": [{"source": source, "at": at} for source, at in heard]}

    async def publish(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.set(RF_STATE_KEY, json.dumps(self.state()), ex=STATE_TTL)

    async def digest_loop(self) -> None:
        while True:
            digest = await _db(registry.presence_digest)()
            if self.digest and digest != self.digest:
                # Our catalog changed (published here, or learnt): our neighbours lack it, so
                # sync now rather than when their next beacon shows the difference.
                self.neighbours.catalog_changed()
            self.digest = digest
            await asyncio.sleep(DIGEST_EVERY)

    async def run(self) -> None:
        self.started = time.monotonic()
        await self.tune_access()
        tasks = [asyncio.ensure_future(job) for job in (self.link.run(), self.rf.run(),
                                                        self.digest_loop())]
        try:
            while True:
                await self.publish()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), PUBLISH_EVERY)
                self.changed.clear()
                await self.tune_access()  # stations no longer heard stop counting
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
        finally:
            await self.neighbours.stop()
            await self.link.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.redis.delete(RF_STATE_KEY)
