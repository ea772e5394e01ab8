"""meshd's routing: runs the distance-vector table (`mesh.distance_vector`) over the station's
links, whichever process holds them (`mesh.linkbus`).

- Neighbours are the peers with a live link: a link coming up (here or in daphne) adds one at
  once; every `MESH_ROUTE_PING_INTERVAL` each is pinged over its link, the round trip and the
  losses fold into its cost (`mesh.link_cost`); a link that closes, or `DEAD_AFTER_FAILURES`
  pings in a row unanswered, removes it and every route through it.
- Updates: the whole table to each neighbour every `MESH_ROUTE_INTERVAL` seconds (16 by
  default, with jitter) and the triggered ones `TRIGGER_DELAY` after a change.
- The table is stored for the API, the admin and forwarding (`services.routes_store`) at most
  once a second, when it changed; the station's seqno in `routing-seqno` of the data dir,
  advanced at every start so a restarted station's advertisements are news.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any

from mesh import distance_vector as dv
from mesh import link_cost, linkbus, protocol
from mesh.link_cost import INFINITY, LinkStats

logger = logging.getLogger(__name__)

DEAD_AFTER_FAILURES = 3
_CALLSIGN = re.compile(r"^[A-Z0-9/]{3,16}$")
ACTIVE: Router | None = None  # meshd's router; None in the other processes
BATCH = 400  # update rows per ROUTE_UPDATE message
STORE_EVERY = 1.0


def seqno_load(path: Path) -> int:
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
    return value % dv.SEQNO_MODULUS


def seqno_save(path: Path, seqno: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seqno}\n")
    os.replace(tmp, path)


def significant(old: int, new: int) -> bool:
    """Whether a re-measured link cost is worth re-selecting routes for (RTT jitter is not)."""
    if old == new:
        return False
    if INFINITY in (old, new):
        return True
    return abs(new - old) >= max(8, old // 8)


class Router:
    def __init__(self, self_id: str, *, seqno_path: Path, interval: float, ping_interval: float,
                 ping_timeout: float, store: Any, callsigns: dict[str, str] | None = None,
                 rf_peers: set[str] | None = None, on_ping: Any = None,
                 own_callsign: Any = None) -> None:
        self.self_id = self_id
        self.own_callsign = own_callsign or (lambda: "")
        self.on_ping = on_ping  # async (peer, rtt or None) -> None: membership hears it too
        self.seqno_path = seqno_path
        self.interval = interval
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.store = store  # async (rows) -> None
        seqno = dv.seqno_add(seqno_load(seqno_path))
        seqno_save(seqno_path, seqno)
        self.table = dv.RoutingTable(self_id, seqno)
        self.stats: dict[str, LinkStats] = {}
        self.failures: dict[str, int] = {}
        self.callsigns: dict[str, str] = dict(callsigns or {})
        self.rf_peers = rf_peers or set()
        self.rf_intervals: dict[str, float] = {}  # RF neighbour -> its periodic update interval
        self.rf_sent: dict[str, float] = {}  # RF neighbour -> when it last got the full table
        # async (payload) -> None: one transmission on the air that every RF neighbour hears
        # (set by meshd's radio); without it each RF neighbour gets its own copy.
        self.rf_broadcast: Any = None
        self.changed = True
        self.stored: list[tuple] | None = None
        self.kick = asyncio.Event()
        self.pinging: set[str] = set()
        self.ping_count: dict[str, int] = {}
        self.started = time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    # -- neighbours ------------------------------------------------------------------------

    def has(self, peer: str) -> bool:
        return peer in self.stats

    async def link_up(self, peer: str, callsign: str = "", *, rf: bool = False,
                      cost: int | None = None, interval: float | None = None) -> None:
        """A link to `peer` is up. An RF link (`rf`) comes with its fixed `cost` and update
        `interval` (minutes): it is not pinged, and gets periodic updates only that often."""
        if not peer or peer == self.self_id:
            return
        if callsign:
            self.callsigns[peer] = callsign
        if peer in self.stats and not rf and peer in self.rf_peers:
            # A LAN/IP link to a station we reached by radio: it replaces the RF link.
            await self.link_down(peer, "a LAN link replaces the RF link")
        if peer in self.stats:
            return
        if rf:
            self.rf_peers.add(peer)
            self.rf_intervals[peer] = interval or self.interval
            self.rf_sent[peer] = self.now()  # the full table goes with add_neighbour below
        stats = self.stats[peer] = LinkStats() if cost is None else LinkStats(base=cost)
        self.failures[peer] = 0
        out = self.table.add_neighbour(peer, cost=stats.cost(), rf=peer in self.rf_peers,
                                       now=self.now(),
                                       interval=self.rf_intervals.get(peer, self.interval))
        logger.info("mesh route neighbour up", extra={"peer": peer,
                                                      "callsign": self.callsigns.get(peer, "")})
        self.changed = True
        await self.dispatch(out)
        self.kick.set()

    async def link_down(self, peer: str, reason: str) -> None:
        if peer not in self.stats:
            return
        del self.stats[peer]
        self.failures.pop(peer, None)
        self.rf_peers.discard(peer)
        self.rf_intervals.pop(peer, None)
        self.rf_sent.pop(peer, None)
        out = self.table.remove_neighbour(peer, now=self.now())
        logger.info("mesh route neighbour down", extra={"peer": peer, "reason": reason})
        self.changed = True
        await self.dispatch(out)
        self.kick.set()

    async def ping(self, peer: str) -> None:
        """One ping over the link to `peer` (wherever it is held): cost and liveness."""
        if peer in self.pinging:
            return
        self.pinging.add(peer)
        self.ping_count[peer] = count = self.ping_count.get(peer, 0) + 1
        probe = count % link_cost.PROBE_EVERY == 0 and peer in self.stats
        payload = {"pad": "x" * link_cost.PROBE_BYTES} if probe else {}
        started = time.monotonic()
        try:
            await linkbus.request(peer, protocol.PING, payload, self.ping_timeout)
            ok = True
        except Exception:
            ok = False
        finally:
            self.pinging.discard(peer)
        rtt = time.monotonic() - started
        if self.on_ping is not None:
            with contextlib.suppress(Exception):
                await self.on_ping(peer, rtt if ok else None)
        if ok and peer not in self.stats:
            await self.link_up(peer)
        stats = self.stats.get(peer)
        if stats is None:
            return
        old = stats.cost()
        if not probe:
            stats.record_ping(ok, rtt if ok else None)
        elif ok:
            # The padded ping measures bandwidth, not the link's round trip.
            sample = link_cost.bandwidth_sample(link_cost.PROBE_BYTES, rtt, stats.srtt)
            if sample is not None:
                stats.record_throughput(link_cost.PROBE_BYTES, link_cost.PROBE_BYTES / sample)
                with contextlib.suppress(Exception):  # sync pacing reads it (SyncPacer)
                    await linkbus.bandwidth_note(peer, stats.bandwidth_bps)
        if ok:
            self.failures[peer] = 0
        else:
            self.failures[peer] = self.failures.get(peer, 0) + 1
            if self.failures[peer] >= DEAD_AFTER_FAILURES:
                await self.link_down(peer, f"{DEAD_AFTER_FAILURES} pings unanswered")
                return
        new = stats.cost()
        current = next((n.cost for n in self.table.neighbours() if n.station_id == peer), old)
        if significant(current, new):
            out = self.table.set_neighbour_cost(peer, cost=new, now=self.now())
            self.changed = True
            await self.dispatch(out)

    # -- messages --------------------------------------------------------------------------

    async def receive(self, peer: str, payload: dict[str, Any]) -> None:
        """A ROUTE_UPDATE or SEQNO_REQUEST from `peer` (checked by its link already)."""
        try:
            messages = dv.from_wire(payload)
        except ValueError as exc:
            logger.warning("mesh routing message refused", extra={"peer": peer,
                                                                  "error": str(exc)})
            return
        if peer not in self.stats:
            await self.link_up(peer)
        self.learn_names(peer, payload.get("names"))
        now = self.now()
        out: list[dv.Outgoing] = []
        for message in messages:
            try:
                out += self.table.receive(peer, message, now=now)
            except (ValueError, KeyError) as exc:
                logger.warning("mesh routing message refused", extra={"peer": peer,
                                                                      "error": str(exc)})
                return
        self.changed = True
        await self.dispatch(out)

    def learn_names(self, peer: str, names: Any) -> None:
        """Callsigns a neighbour advertised with its updates; a linked neighbour's own callsign
        (proven by its link) is never overwritten."""
        if not isinstance(names, dict):
            return
        for station_id, callsign in list(names.items())[:BATCH + 1]:
            if (isinstance(station_id, str) and isinstance(callsign, str)
                    and _CALLSIGN.match(callsign) and station_id != self.self_id
                    and (station_id not in self.stats or not self.callsigns.get(station_id))):
                self.callsigns[station_id] = callsign
                self.changed = True

    async def dispatch(self, out: list[dv.Outgoing]) -> None:
        """Send what the table returned: updates batched (per neighbour when addressed to
        one, else to every neighbour at once), requests one by one."""
        everyone: list[dv.Update] = []
        updates: dict[str, list[dv.Update]] = {}
        for item in out:
            if isinstance(item.message, dv.Update):
                if item.to is None:
                    everyone.append(item.message)
                else:
                    updates.setdefault(item.to, []).append(item.message)
                continue
            targets = [item.to] if item.to is not None else list(self.stats)
            for peer in targets:
                await self._send(peer, dv.request_to_wire(item.message))
        for peer, batch in updates.items():
            await self.send_updates(peer, batch)
        if everyone:
            await self.send_to_all(list(self.stats), everyone)

    def _update_payloads(self, batch: list[dv.Update], *, lan: bool) -> list[dict[str, Any]]:
        payloads = []
        for start in range(0, len(batch), BATCH):
            part = batch[start:start + BATCH]
            payload = dv.updates_to_wire(part, lan=lan)
            # Callsigns ride along for the operator's view (display only: routing and
            # forwarding go by station id; a link proves only its own peer's callsign).
            names = {u.destination: self.callsigns[u.destination] for u in part
                     if self.callsigns.get(u.destination)}
            if self.own_callsign():
                names[self.self_id] = self.own_callsign()
            if names:
                payload["names"] = names
            payloads.append(payload)
        return payloads

    async def send_updates(self, peer: str, batch: list[dv.Update]) -> None:
        for payload in self._update_payloads(batch, lan=peer not in self.rf_peers):
            await self._send(peer, payload)

    async def send_to_all(self, peers: list[str], batch: list[dv.Update]) -> None:
        """`batch` to each of `peers`: over LAN/IP links one by one, and to the RF neighbours
        among them in one transmission on the air (`rf_broadcast`), which all of them hear
        (every RF neighbour then counts as having had it)."""
        on_air = [peer for peer in peers if peer in self.rf_peers]
        if on_air and self.rf_broadcast is not None:
            peers = [peer for peer in peers if peer not in self.rf_peers]
            for payload in self._update_payloads(batch, lan=False):
                try:
                    await self.rf_broadcast(payload)
                except Exception as exc:
                    logger.debug("mesh routing broadcast not sent on the air", extra={
                        "error": f"{type(exc).__name__}: {exc}"})
        for peer in peers:
            await self.send_updates(peer, batch)

    async def _send(self, peer: str, payload: dict[str, Any]) -> None:
        kind = payload["type"]
        try:
            await linkbus.send(peer, kind, payload)
        except Exception as exc:
            logger.debug("mesh routing message not sent", extra={
                "peer": peer, "type": kind, "error": f"{type(exc).__name__}: {exc}"})

    async def broadcast(self, *, full: bool) -> None:
        if seqno_load(self.seqno_path) != self.table.seqno:
            seqno_save(self.seqno_path, self.table.seqno)
        now = self.now()
        updates = self.table.updates_to_send(now, full=full)
        if not updates:
            return
        peers = [peer for peer in self.stats if peer not in self.rf_intervals]
        # On the air the whole table goes only every few minutes (the RF interval): when one
        # RF neighbour is due, it goes to all of them in one transmission. The triggered
        # updates (full=False) still go at once, within the air-time budget.
        rf_due = [peer for peer in self.stats if peer in self.rf_intervals and (
            not full or now - self.rf_sent.get(peer, 0.0) >= self.rf_intervals[peer])]
        if rf_due:
            if self.rf_broadcast is not None:
                rf_due = [peer for peer in self.stats if peer in self.rf_intervals]
            if full:
                for peer in rf_due:
                    self.rf_sent[peer] = now
        await self.send_to_all(peers + rf_due, updates)
        self.changed = True

    # -- loops -----------------------------------------------------------------------------

    async def periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.75, 1.0))  # noqa: S311 - jitter
            await self.broadcast(full=True)

    async def trigger_loop(self) -> None:
        while True:
            if self.table.triggered_pending:
                await asyncio.sleep(dv.TRIGGER_DELAY)
                await self.broadcast(full=False)
            else:
                self.kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.kick.wait(), 0.1)

    async def expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            out = self.table.expire(self.now())
            if out:
                self.changed = True
                await self.dispatch(out)
            await self.store_if_changed()

    async def ping_loop(self, candidates: Any) -> None:
        """Ping every linked peer (`candidates()`: station ids with a link in any process)."""
        while True:
            started = time.monotonic()
            # RF neighbours are not pinged: their liveness is their ID beacons (membership).
            peers = (set(await candidates()) | set(self.stats)) - self.rf_peers
            await asyncio.gather(*(self.ping(peer) for peer in peers if peer != self.self_id),
                                 return_exceptions=True)
            await asyncio.sleep(max(0.05, self.ping_interval - (time.monotonic() - started)))

    # -- the stored view ---------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        now, wall = self.now(), dt.datetime.now(dt.UTC)
        lan = {route.destination: route for route in self.table.routes(lan_only=True, now=now)}
        rows = []
        for route in self.table.routes(now=now):
            if route.next_hop is None or route.destination == self.self_id:
                continue
            lan_route = lan.get(route.destination)
            rows.append({
                "destination": route.destination,
                "callsign": self.callsigns.get(route.destination, ""),
                "next_hop": route.next_hop,
                "next_hop_callsign": self.callsigns.get(route.next_hop, ""),
                "cost": min(route.metric, INFINITY),
                "hops": max(1, route.hops),
                "seqno": route.seqno,
                "refreshed_at": wall - dt.timedelta(seconds=max(0.0, route.age)),
                "lan_next_hop": (lan_route.next_hop or "") if lan_route else "",
                "lan_cost": lan_route.metric if lan_route and lan_route.next_hop else None,
                "lan_hops": lan_route.hops if lan_route and lan_route.next_hop else None,
            })
        return rows

    async def store_if_changed(self, force: bool = False) -> None:
        if not (self.changed or force):
            return
        self.changed = False
        rows = self.rows()
        key = sorted((r["destination"], r["next_hop"], r["cost"], r["hops"], r["seqno"],
                      r["lan_next_hop"]) for r in rows)
        # Ages move every second; the stored refresh time only matters when a route changed
        # or every few seconds for the operator's "age" column.
        if key == self.stored and not force and int(time.monotonic()) % 5:
            return
        self.stored = key
        try:
            await self.store(rows)
        except Exception as exc:
            logger.warning("mesh routes not stored", extra={"error": f"{type(exc).__name__}: "
                                                                     f"{exc}"})
            self.changed = True


async def on_routing_message(link: Any, payload: dict[str, Any]) -> None:
    """ROUTE_UPDATE and SEQNO_REQUEST handler, in whichever process holds the link: meshd
    applies it, daphne hands it to meshd."""
    if not isinstance(payload, dict) or payload.get("type") not in (dv.UPDATE_TYPE,
                                                                    dv.SEQNO_REQUEST_TYPE):
        from mesh.registry import MeshHandlerError

        raise MeshHandlerError("malformed", "a routing message names its type in the payload")
    if ACTIVE is not None:
        await ACTIVE.receive(link.peer_station_id, payload)
    else:
        await linkbus.to_daemon({"type": "route", "peer": link.peer_station_id,
                                 "payload": payload})
