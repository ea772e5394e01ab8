"""meshd: the station's long-running mesh process (one asyncio loop).

It holds the mDNS responder and browser, dials a `/ws/coordinate` link to every known peer
(reconnecting with exponential backoff), probes every peer's liveness itself (mDNS record
lifetimes are far too long for that), turns silence into suspect / unreachable, syncs trust on
change, and carries `services.peer_request` calls from other processes over its links.

A link is one link whatever side dialled it: meshd pings over the links it dialled (the other
side hears it), counts the links other stations dialled to us (held by daphne, reported in
Redis) as those peers' heartbeat, does not dial a station whose link to us is up, and checks the
endpoints a dialling station stated by connecting back to them.

The station's own identity is watched every second: a claim, a hand-over or a blacklisting of
the owner re-advertises mDNS, closes links made under the old identity and dials again.
SIGTERM stops it within a few seconds, with an mDNS goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import time
from dataclasses import dataclass
from typing import Any

import websockets
from django.conf import settings

from mesh import (
    gossip,
    linkbus,
    mdns,
    membership,
    probe,
    protocol,
    radio,
    router,
    selectors,
    services,
    trust,
)
from mesh.dbcall import db as _db
from mesh.links import CLOSE_IDENTITY, HANDSHAKE_TIMEOUT, LinkSession
from mesh.models import Peer
from mesh.selectors import DAEMON_KEY
from meshsite.redisconn import get_async_redis
from meshsite.version import full_version

logger = logging.getLogger(__name__)
UNCLAIMED_REFUSAL = "refused: unclaimed"
UNCLAIMED_RETRY = 3.0  # seconds between dials of a peer that is not claimed yet


@dataclass
class KnownPeer:
    pk: int
    station_id: str | None
    endpoint: str
    callsign: str
    state: str
    method: str


class MeshDaemon:
    def __init__(self, *, mdns_enabled: bool, interfaces: list[str], port: int) -> None:
        self.mdns_enabled = mdns_enabled
        self.interfaces = interfaces
        self.port = port
        self.stopping = asyncio.Event()
        self.redis = get_async_redis()
        self.local: trust.LocalStation | None = None
        self.mdns: mdns.MdnsService | None = None
        self.table = membership.MemberTable()
        self.timeouts = membership.Timeouts(settings.MESH_SUSPECT_AFTER,
                                            settings.MESH_UNREACHABLE_AFTER)
        self.rf_timeouts = membership.Timeouts(settings.MESH_RF_SUSPECT_AFTER,
                                               settings.MESH_RF_UNREACHABLE_AFTER)
        self.peers: dict[int, KnownPeer] = {}
        self.dialers: dict[str, asyncio.Task] = {}
        self.links: dict[str, LinkSession] = {}  # peer station id -> established client link
        self.tasks: list[asyncio.Task] = []
        self.reload_now = asyncio.Event()
        self.sync_now = asyncio.Event()
        self.sync_accepted = False  # also ask the links peers dialled to us (news, not beats)
        self.last_db_write: dict[int, float] = {}
        self.request_tasks: set[asyncio.Task] = set()
        self.mdns_addresses: list[str] = []
        self.accepted: dict[str, dict[str, Any]] = {}  # station id -> fresh accepted link
        self.connect_back_at: dict[str, float] = {}  # station id -> last connect-back try
        self.radio: radio.Radio | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        self.local = await _db(trust.local_station)()
        logger.info("meshd starting", extra={"station": self.local.station_id,
                                             "callsign": self.local.callsign or "-",
                                             "claimed": self.local.credential is not None,
                                             "mdns": self.mdns_enabled})
        await self.redis.set(DAEMON_KEY, str(time.time()), ex=5)
        self.router = router.Router(
            self.local.station_id, seqno_path=settings.DATA_DIR / "routing-seqno",
            interval=settings.MESH_ROUTE_INTERVAL, ping_interval=settings.MESH_PROBE_INTERVAL,
            ping_timeout=settings.MESH_SUSPECT_AFTER, store=self.store_routes,
            on_ping=self.link_pinged,
            own_callsign=lambda: self.local.callsign if self.local else "")
        router.ACTIVE = self.router
        await _db(services.routes_clear)()
        with contextlib.suppress(Exception):
            await self.redis.delete(linkbus.DAEMON_INBOX)  # news about links of a past life
        await self.reload_peers()
        if self.mdns_enabled:
            await self.start_mdns()
        jobs = [self.heartbeat, self.probe_loop, self.reload_loop, self.command_loop,
                self.request_loop, self.trust_watch, self.sync_loop, self.inbox_loop,
                self.router.periodic_loop, self.router.trigger_loop,
                self.router.expire_loop, self.route_ping_loop]
        if settings.RF_KISS:
            self.radio = radio.Radio(url=settings.RF_KISS, redis=self.redis, daemon=self)
            self.router.rf_broadcast = self.radio.neighbours.broadcast
            jobs.append(self.radio.run)
            logger.info("radio starting", extra={"tnc": settings.RF_KISS})
        for job in jobs:
            self.tasks.append(asyncio.ensure_future(self.guard(job)))
        await self.stopping.wait()
        await self.shutdown()

    async def start_mdns(self) -> None:
        addresses = mdns.interface_addresses(self.interfaces)
        self.mdns_addresses = addresses
        self.mdns = mdns.MdnsService(self.advert(addresses), on_found=self.on_mdns_found,
                                     on_gone=self.on_mdns_gone)
        await self.mdns.start()
        logger.info("mDNS advertising", extra={"addresses": ",".join(addresses),
                                               "port": self.port})

    def advert(self, addresses: list[str]) -> mdns.Advert:
        local = self.local or trust.LocalStation("", "", "", None)
        return mdns.Advert(station_id=local.station_id, port=self.port, addresses=addresses,
                           callsign=local.callsign, version=full_version(),
                           capabilities=selectors.CAPABILITIES, api_path="/api",
                           fingerprint=local.fingerprint, ttl=settings.MESH_MDNS_TTL)

    async def shutdown(self) -> None:
        logger.info("meshd stopping")
        for task in [*self.tasks, *self.dialers.values()]:
            task.cancel()
        for link in list(self.links.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.shutdown(1001), 1)
        await asyncio.gather(*self.tasks, *self.dialers.values(), return_exceptions=True)
        if self.mdns is not None:
            await self.mdns.stop()
        with contextlib.suppress(Exception):
            await self.redis.delete(DAEMON_KEY)
            await self.redis.aclose()

    async def guard(self, job: Any) -> None:
        """Run a loop forever: a crash is logged and the loop restarted a second later."""
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("meshd loop failed; restarting it", extra={"loop": job.__name__})
                await asyncio.sleep(1)

    async def heartbeat(self) -> None:
        while True:
            await self.redis.set(DAEMON_KEY, str(time.time()), ex=5)
            await asyncio.sleep(1.5)

    # -- peers -----------------------------------------------------------------------------

    async def reload_peers(self) -> None:
        def load() -> list[KnownPeer]:
            return [KnownPeer(p.pk, p.station_id, p.endpoint, p.callsign, p.state,
                              p.discovery_method) for p in Peer.objects.all()]

        rows = await _db(load)()
        now = time.monotonic()
        fresh = {row.pk: row for row in rows}
        for pk in set(self.peers) - set(fresh):
            self.table.forget(str(pk))
        for row in rows:
            # A station heard only on the air: silence is counted in minutes (ID beacons).
            timeouts = self.rf_timeouts if (row.method == Peer.Method.RF and not row.endpoint) \
                else self.timeouts
            member = self.table.track(str(row.pk), timeouts, now)
            if member.state == membership.UNKNOWN and row.state != membership.UNKNOWN:
                member.state = row.state  # carry the stored state over a restart
        self.peers = fresh
        self.update_dialers()

    async def reload_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reload_now.wait(), 5)
            self.reload_now.clear()
            await self.reload_peers()

    async def on_mdns_found(self, sighting: mdns.Sighting) -> None:
        try:
            await _db(services.peer_seen)(
                station_id=sighting.station_id, endpoint=sighting.endpoint,
                method=Peer.Method.MDNS, callsign=sighting.callsign,
                capabilities=sighting.capabilities, version=sighting.version,
                fingerprint=sighting.fingerprint)
        except services.MeshError as exc:
            logger.warning("mDNS sighting ignored", extra={"error": exc.detail})
            return
        await self.reload_peers()
        for peer in self.peers.values():
            if peer.station_id == sighting.station_id:
                await self.probe_peer(peer)

    async def on_mdns_gone(self, station_id: str) -> None:
        """A goodbye: the station stopped cleanly, so it is unreachable now, not in seconds."""
        for peer in self.peers.values():
            if peer.station_id == station_id:
                member = self.table.members.get(str(peer.pk))
                if member is not None and member.state != membership.UNREACHABLE:
                    member.state = membership.UNREACHABLE
                    member.last_heard = time.monotonic() - self.timeouts.unreachable_after
                    await _db(services.peer_state_record)(peer_id=peer.pk,
                                                          state=membership.UNREACHABLE)
                    logger.info("mesh peer said goodbye", extra={"station": station_id})

    # -- liveness --------------------------------------------------------------------------

    async def probe_peer(self, peer: KnownPeer) -> None:
        if not peer.endpoint:
            return
        result = await probe.http_get(peer.endpoint + "/api/mesh/ping",
                                      settings.MESH_PROBE_TIMEOUT)
        if not result.ok:
            return
        body = result.body if isinstance(result.body, dict) else {}
        answered_id = body.get("stationId")
        if peer.station_id and answered_id not in (None, peer.station_id):
            return  # another station answers at that address now
        if not peer.station_id and isinstance(answered_id, str) and answered_id:
            if answered_id == (self.local.station_id if self.local else None):
                return  # an endpoint of our own
            await _db(services.peer_identify)(peer_id=peer.pk, station_id=answered_id)
            self.reload_now.set()
        await self.heard(peer, result.rtt)

    async def heard(self, peer: KnownPeer, rtt: float | None) -> None:
        """The peer answered (a probe, a ping over a link, traffic on its accepted link)."""
        if str(peer.pk) not in self.table.members:
            return
        now = time.monotonic()
        transition = self.table.heard(str(peer.pk), now, rtt)
        member = self.table.members[str(peer.pk)]
        rtt_ms = None if member.rtt is None else member.rtt * 1000
        if transition is not None:
            await self.record(peer, transition)
        elif now - self.last_db_write.get(peer.pk, 0) >= 5:
            self.last_db_write[peer.pk] = now
            await _db(services.peer_state_record)(peer_id=peer.pk, state=member.state,
                                                  rtt_ms=rtt_ms, heard=True)

    async def record(self, peer: KnownPeer, transition: membership.Transition) -> None:
        member = self.table.members[str(peer.pk)]
        if transition.new == membership.UNREACHABLE and peer.station_id and \
                self.radio is not None:
            # Its beacons stopped: the RF link is gone (RF links are not pinged).
            await self.radio.neighbours.close(peer.station_id, "unreachable on the air")
        self.last_db_write[peer.pk] = time.monotonic()
        logger.info("mesh peer state", extra={
            "station": peer.station_id or "-", "endpoint": peer.endpoint,
            "old": transition.old, "new": transition.new,
            "silence": None if transition.silence is None else round(transition.silence, 2)})
        await _db(services.peer_state_record)(
            peer_id=peer.pk, state=transition.new, heard=transition.new == membership.ACTIVE,
            rtt_ms=None if member.rtt is None else member.rtt * 1000)

    async def probe_loop(self) -> None:
        while True:
            started = time.monotonic()
            peers = list(self.peers.values())
            await asyncio.gather(*(self.probe_peer(p) for p in peers), return_exceptions=True)
            await self.accepted_links_heard()
            for transition in self.table.sweep(time.monotonic()):
                peer = self.peers.get(int(transition.key))
                if peer is not None:
                    await self.record(peer, transition)
            await self.publish_members()
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.05, settings.MESH_PROBE_INTERVAL - elapsed))

    async def publish_members(self) -> None:
        now_mono, now_wall = time.monotonic(), time.time()
        members = {}
        for key, member in self.table.members.items():
            peer = self.peers.get(int(key))
            if peer is None:
                continue
            members[str(peer.pk)] = {
                "state": member.state,
                "lastHeard": None if member.last_heard is None
                else now_wall - (now_mono - member.last_heard),
                "rttMs": None if member.rtt is None else round(member.rtt * 1000, 2),
                "connected": bool(peer.station_id and (peer.station_id in self.links
                                                       or peer.station_id in self.accepted)),
            }
        await self.redis.set(services.MEMBERS_KEY, json.dumps(members), ex=30)

    async def accepted_links_heard(self) -> None:
        """Links other stations dialled to us (daphne holds them and notes in Redis when each
        last carried a message): a live one keeps its peer active even where we cannot connect
        back (NAT); the endpoints it stated are checked by connecting back."""
        raw = await self.redis.hgetall(services.ACCEPTED_KEY)
        fresh: dict[str, dict[str, Any]] = {}
        now = time.time()
        for key, value in raw.items():
            try:
                entry = json.loads(value)
                heard_at = float(entry["t"])
            except (ValueError, KeyError, TypeError):
                continue
            if now - heard_at < settings.MESH_SUSPECT_AFTER:
                fresh[key.decode() if isinstance(key, bytes) else str(key)] = entry
        self.accepted = fresh
        by_station = {p.station_id: p for p in self.peers.values() if p.station_id}
        for station_id, entry in fresh.items():
            peer = by_station.get(station_id)
            if peer is None:
                self.reload_now.set()  # the link made the row; meshd has not loaded it yet
                continue
            await self.heard(peer, None)
            if not peer.endpoint and entry.get("endpoints"):
                self.connect_back(peer, list(entry["endpoints"]))

    def connect_back(self, peer: KnownPeer, endpoints: list[str]) -> None:
        """Try the endpoints a dialling peer stated (at most every 30 s per peer, in a task)."""
        station_id = peer.station_id or ""
        if time.monotonic() - self.connect_back_at.get(station_id, -1e9) < 30:
            return
        self.connect_back_at[station_id] = time.monotonic()
        task = asyncio.ensure_future(self._connect_back(station_id, endpoints))
        self.request_tasks.add(task)
        task.add_done_callback(self.request_tasks.discard)

    async def _connect_back(self, station_id: str, endpoints: list[str]) -> None:
        for endpoint in endpoints[:8]:
            result = await probe.http_get(endpoint + "/api/mesh/ping",
                                          settings.MESH_PROBE_TIMEOUT)
            body = result.body if isinstance(result.body, dict) else {}
            if result.ok and body.get("stationId") == station_id:
                await _db(services.peer_seen)(station_id=station_id, endpoint=endpoint,
                                              method=Peer.Method.PEER)
                if station_id in self.accepted:  # its link to us is up: so is this Link row
                    await _db(services.peer_link_connected)(station_id=station_id,
                                                            connected=True)
                logger.info("mesh peer endpoint verified by connecting back",
                            extra={"station": station_id, "endpoint": endpoint})
                self.reload_now.set()
                return
        logger.info("mesh peer endpoints do not answer: its link to us stays its only path "
                    "(NAT?)", extra={"station": station_id, "endpoints": ",".join(endpoints)})

    async def route_ping_loop(self) -> None:
        """The router pings over every link, dialled or accepted: the round trip is the
        link's cost and, for membership, the peer's heartbeat (the other side hears us too)."""
        await self.router.ping_loop(self.linked_station_ids)

    async def linked_station_ids(self) -> list[str]:
        owners = await linkbus.linked_peers()
        for station_id, link in self.links.items():
            if not link.closed and station_id not in owners:
                await linkbus.attach(link)  # a daphne link to the same peer closed: ours now
        return list(owners) + [sid for sid, link in self.links.items() if not link.closed]

    async def link_pinged(self, station_id: str, rtt: float | None) -> None:
        if rtt is None:
            return
        for peer in self.peers.values():
            if peer.station_id == station_id:
                await self.heard(peer, rtt)

    async def store_routes(self, rows: list[dict[str, Any]]) -> None:
        await _db(services.routes_store)(rows, self_station_id=self.router.self_id)

    async def inbox_loop(self) -> None:
        """What daphne hands to meshd about the links it holds (`linkbus.to_daemon`)."""
        redis = get_async_redis()
        while True:
            item = await redis.blpop([linkbus.DAEMON_INBOX], timeout=linkbus.POLL)
            if item is None:
                continue
            try:
                event = json.loads(item[1])
                kind, peer = event["type"], str(event["peer"])
            except (ValueError, KeyError, TypeError):
                continue
            if kind == "route" and isinstance(event.get("payload"), dict):
                await self.router.receive(peer, event["payload"])
            elif kind == "link_up":
                if self.radio is not None:
                    await self.radio.neighbours.yield_to_lan(peer)
                await self.router.link_up(peer, str(event.get("callsign") or ""))
            elif kind == "link_down":
                await self.link_gone(peer, "accepted link closed")

    async def link_gone(self, station_id: str, reason: str) -> None:
        """A link to `station_id` closed; it stays a neighbour while another link to it lives."""
        link = self.links.get(station_id)
        if link is not None and not link.closed:
            await linkbus.attach(link)
            return
        if station_id in await linkbus.linked_peers():
            return
        await self.router.link_down(station_id, reason)
        rf = self.radio.neighbours.session_for(station_id) if self.radio is not None else None
        if rf is not None:
            await self.radio.neighbours.attach(rf)  # the station is still heard on the air

    # -- identity --------------------------------------------------------------------------

    async def identity_check(self) -> None:
        """Follow a claim, a hand-over or a blacklisting of our owner without a restart."""
        local = await _db(trust.local_station)()
        if self.local is not None and local.identity == self.local.identity:
            return
        old, self.local = self.local, local
        logger.info("station identity changed", extra={
            "station": local.station_id, "callsign": local.callsign or "-",
            "was": (old.callsign if old else "") or "-",
            "credential": "yes" if local.credential else local.withheld})
        if self.mdns is not None:
            await self.mdns.refresh(self.advert(self.mdns_addresses))
        # Links that proved another identity are closed; we dial again as who we are now.
        stale = [link for link in self.links.values()
                 if link.local is None or link.local.identity != local.identity]
        for link in stale:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.shutdown(CLOSE_IDENTITY), 1)
        if self.radio is not None:
            await self.radio.neighbours.close_all("our identity changed")
        if local.credential is None:
            for endpoint in list(self.dialers):
                self.dialers.pop(endpoint).cancel()
        await self.close_accepted_links(local)
        self.update_dialers()

    async def close_accepted_links(self, local: trust.LocalStation) -> None:
        from channels.layers import get_channel_layer

        from mesh.consumers import LINKS_GROUP

        layer = get_channel_layer()
        if layer is None:
            return
        try:
            await layer.group_send(LINKS_GROUP, {"type": "mesh.identity",
                                                 "identity": list(local.identity)})
        except Exception as exc:
            logger.info("closing accepted links failed", extra={"error": str(exc)})

    # -- links -----------------------------------------------------------------------------

    def update_dialers(self) -> None:
        if self.local is None or self.local.credential is None:
            return  # an unclaimed station cannot prove itself: no links, probes only
        wanted = {p.endpoint for p in self.peers.values() if p.endpoint and (
            p.method != Peer.Method.PEER or settings.MESH_DIAL_LEARNT_PEERS)}
        for endpoint in set(self.dialers) - wanted:
            self.dialers.pop(endpoint).cancel()
        for endpoint in wanted - set(self.dialers):
            self.dialers[endpoint] = asyncio.ensure_future(self.dial_forever(endpoint))

    def accepted_from(self, endpoint: str) -> bool:
        """The station at `endpoint` has dialled us and its link is up: one link is enough."""
        return any(p.endpoint == endpoint and p.station_id in self.accepted
                   for p in self.peers.values() if p.station_id)

    async def dial_forever(self, endpoint: str) -> None:
        delay = settings.MESH_RECONNECT_MIN
        while True:
            if self.accepted_from(endpoint):
                await asyncio.sleep(settings.MESH_PROBE_INTERVAL)
                continue
            started = time.monotonic()
            detail = await self.dial_once(endpoint)
            if time.monotonic() - started > 30:
                delay = settings.MESH_RECONNECT_MIN  # it was up for a while: start over
            await _db(self.link_detail)(endpoint, detail)
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter
            delay = min(settings.MESH_RECONNECT_MAX, delay * 2)
            if detail.startswith(UNCLAIMED_REFUSAL):
                # Its operator is about to claim it (the README's order): try again soon.
                delay = min(delay, UNCLAIMED_RETRY)

    @staticmethod
    def link_detail(endpoint: str, detail: str) -> None:
        from mesh.models import Link

        Link.objects.filter(address=endpoint, kind=Link.Kind.LAN).update(
            detail=detail[:300], connected=False)

    async def dial_once(self, endpoint: str) -> str:
        url = "ws" + endpoint.removeprefix("http") + "/ws/coordinate"
        try:
            async with websockets.connect(url, open_timeout=5, max_size=protocol.MAX_FRAME_BYTES,
                                          ping_interval=5, ping_timeout=5,
                                          close_timeout=2) as ws:
                session = LinkSession(role="client", send_text=ws.send,
                                      close=lambda code: ws.close(code),
                                      on_established=lambda s: self.on_link_up(s, endpoint))
                await session.start()
                deadline = asyncio.get_running_loop().call_later(
                    HANDSHAKE_TIMEOUT, lambda: None if session.established.is_set()
                    else asyncio.ensure_future(ws.close(4408)))
                try:
                    async for message in ws:
                        await session.receive(message)
                        if session.closed:
                            break
                finally:
                    deadline.cancel()
                    if session.peer_station_id and self.links.get(
                            session.peer_station_id) is session:
                        del self.links[session.peer_station_id]
                        await linkbus.detach(session)
                        await self.link_gone(session.peer_station_id, "dialled link closed")
                        await _db(services.peer_link_connected)(
                            station_id=session.peer_station_id, connected=False)
                    await session.shutdown()
                if session.refused is not None:
                    return f"refused: {session.refused.code}: {session.refused.detail}"
                return "closed"
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            return f"connect failed: {type(exc).__name__}: {exc}"

    async def on_link_up(self, session: LinkSession, endpoint: str) -> None:
        self.links[session.peer_station_id] = session
        await linkbus.attach(session)
        await self.router.link_up(session.peer_station_id, session.peer_callsign)

        def record() -> None:
            # The dialled endpoint now has a proven station id (a manual row gets it here).
            services.peer_seen(station_id=session.peer_station_id, endpoint=endpoint,
                               method=Peer.Method.PEER, callsign=session.peer_callsign,
                               fingerprint=session.peer_fingerprint)
            services.peer_link_connected(station_id=session.peer_station_id, connected=True)

        await _db(record)()
        await gossip.on_link_established(session)
        self.reload_now.set()

    async def sync_all(self) -> None:
        links = [link for link in self.links.values() if not link.closed]
        results = await asyncio.gather(*(gossip.sync_round(link) for link in links),
                                       return_exceptions=True)
        for link, result in zip(links, results, strict=True):
            if isinstance(result, BaseException):
                logger.info("mesh sync failed", extra={"peer": link.peer_station_id,
                                                       "error": f"{type(result).__name__}: "
                                                                f"{result}"})

    async def sync_loop(self) -> None:
        while True:
            await self.sync_now.wait()
            self.sync_now.clear()
            accepted, self.sync_accepted = self.sync_accepted, False
            if accepted:
                await self.sync_accepted_links()
            await self.sync_all()

    async def sync_accepted_links(self) -> None:
        """Our trust changed: the links other stations dialled to us (held by daphne) sync now
        too, so news travels against the dial direction without waiting for their beat."""
        from channels.layers import get_channel_layer

        from mesh.consumers import LINKS_GROUP

        layer = get_channel_layer()
        if layer is None:
            return
        try:
            await layer.group_send(LINKS_GROUP, {"type": "mesh.sync"})
        except Exception as exc:
            logger.info("mesh sync of accepted links failed", extra={"error": str(exc)})

    async def trust_watch(self) -> None:
        """Certificates or blacklist changed here (API, admin, a link): sync every link now.
        Our own identity is checked on the same beat (a claim from any process)."""
        last = None
        while True:
            await self.identity_check()
            try:
                digest = await _db(selectors.trust_digest)()
            except Exception as exc:
                logger.warning("trust digest failed", extra={"error": str(exc)})
                digest = last
            if last is not None and digest != last:
                self.sync_accepted = True
                self.sync_now.set()
            last = digest
            await asyncio.sleep(1)

    # -- commands from other processes -----------------------------------------------------

    async def command_loop(self) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(services.COMMAND_CHANNEL)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                if message is None:
                    continue
                try:
                    data = json.loads(message["data"])
                except (TypeError, ValueError):
                    continue
                command = data.get("command")
                if command == "peers_changed":
                    self.reload_now.set()
                elif command in ("changed", "gossip"):
                    self.sync_accepted = self.sync_accepted or command == "changed"
                    self.sync_now.set()
                elif command == "mdns_refresh" and self.mdns is not None:
                    await self.mdns.refresh()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def request_loop(self) -> None:
        redis = get_async_redis()
        while True:
            item = await redis.blpop([services.REQUEST_QUEUE], timeout=2)
            if item is None:
                continue
            task = asyncio.ensure_future(self.carry_request(item[1]))
            self.request_tasks.add(task)
            task.add_done_callback(self.request_tasks.discard)

    async def carry_request(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
            reply_key = data["reply"]
        except (ValueError, KeyError, TypeError):
            return
        if time.time() > data.get("expires", 0):
            return
        # Over any link to the peer: one meshd dialled, or one it dialled to us (daphne).
        try:
            payload = await linkbus.request(str(data.get("peer")), data["type"],
                                            data.get("payload") or {},
                                            float(data.get("timeout", 10)))
            answer = {"payload": payload}
        except TimeoutError:
            answer = {"error": "timeout", "detail": "the peer did not answer in time"}
        except Exception as exc:
            answer = {"error": getattr(exc, "code", "failed"),
                      "detail": getattr(exc, "detail", str(exc))}
        await self.redis.rpush(reply_key, json.dumps(answer))
        await self.redis.expire(reply_key, 60)


def run_daemon(*, mdns_enabled: bool, interfaces: list[str], port: int) -> None:
    async def main() -> None:
        daemon = MeshDaemon(mdns_enabled=mdns_enabled, interfaces=interfaces, port=port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stopping.set)
        await daemon.run()

    asyncio.run(main())
