"""A discrete-event mesh that runs the real `mesh.distance_vector` tables over virtual links.

Each station is a `RoutingTable`; each link delivers messages after its one-way latency, in
order, and drops what is in flight when it fails. The daemon's part is played here: a link that
fails is noticed `detect_delay` seconds later (`remove_neighbour` at both ends; with
`detect=False` it is never noticed and only route expiry saves the day), a link that comes back
is added again after the same delay; every station sends its full table every `interval` seconds
(random phase), calls `expire` every `tick` seconds, flushes triggered updates TRIGGER_DELAY
after they are queued, and sends whatever a table returns at once.

After every delivery or neighbour event the next-hop chain is walked from the station whose
selection changed, in both views, and a loop is recorded (`loops`). `mismatches()` compares every
table with Dijkstra over the links that are up (LAN links only for the LAN view); pairs whose best
path is longer than the hop limit are left out (a station may then use a costlier path that
fits, or none). Bytes are the JSON payloads (`updates_to_wire`,
`request_to_wire`, compact separators), counted per sending station.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mesh.distance_vector import (
    DEFAULT_INTERVAL,
    HOP_LIMIT,
    TRIGGER_DELAY,
    Message,
    Outgoing,
    RoutingTable,
    SeqnoRequest,
    Update,
    request_to_wire,
    updates_to_wire,
)
from mesh.link_cost import INFINITY, LAN_BASE, cost


@dataclass
class Link:
    a: str
    b: str
    cost: int
    latency: float
    rf: bool = False
    up: bool = True
    generation: int = 0

    def other(self, station: str) -> str:
        return self.b if station == self.a else self.a


@dataclass
class Counters:
    bytes: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    deliveries: int = 0

    def reset(self) -> None:
        self.bytes.clear()
        self.messages = 0
        self.deliveries = 0


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":")))


class Mesh:
    """Stations and links; `run_until(t)` advances the simulated clock."""

    def __init__(self, stations: Iterable[str], links: Iterable[Link], *, seed: int = 0,
                 interval: float = DEFAULT_INTERVAL, detect_delay: float = 1.0,
                 tick: float = 1.0, hop_limit: int = HOP_LIMIT) -> None:
        self.rng = random.Random(seed)
        self.interval = interval
        self.detect_delay = detect_delay
        self.tick = tick
        self.hop_limit = hop_limit
        self.now = 0.0
        self.tables = {s: RoutingTable(s, self.rng.randrange(1 << 16), hop_limit=hop_limit)
                       for s in stations}
        self.links = {_key(link.a, link.b): link for link in links}
        self.adjacent: dict[str, list[Link]] = {s: [] for s in self.tables}
        for link in self.links.values():
            self.adjacent[link.a].append(link)
            self.adjacent[link.b].append(link)
        self.loops: list[tuple[float, str, str, bool]] = []
        self.counters = Counters()
        self._queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._order = itertools.count()
        self._last_arrival: dict[tuple[str, str], float] = {}
        self._flush_due: set[str] = set()
        self._optimal: dict[bool, dict[str, dict[str, tuple[int, int]]]] = {}
        for link in self.links.values():
            if link.up:
                self._at(0.0, "detect_up", link.a, link.b, link.generation)
        for station in self.tables:
            self._at(self.rng.uniform(0, interval), "periodic", station)
        self._at(tick, "tick")

    # --- driving ----------------------------------------------------------------------------

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, kind, args = heapq.heappop(self._queue)
            self.now = when
            getattr(self, f"_on_{kind}")(*args)
        self.now = until

    def fail(self, a: str, b: str, *, detect: bool = True) -> None:
        link = self.links[_key(a, b)]
        link.up = False
        link.generation += 1
        self._optimal.clear()
        if detect:
            self._at(self.now + self.detect_delay, "detect_down", a, b, link.generation)

    def restore(self, a: str, b: str) -> None:
        link = self.links[_key(a, b)]
        link.up = True
        link.generation += 1
        self._optimal.clear()
        self._at(self.now + self.detect_delay, "detect_up", a, b, link.generation)

    # --- checks -----------------------------------------------------------------------------

    def optimal(self, *, lan_only: bool = False) -> dict[str, dict[str, tuple[int, int]]]:
        """For every destination, every station's best (metric, hops) over links that are up."""
        if lan_only not in self._optimal:
            self._optimal[lan_only] = shortest_paths(self.tables, self.adjacent,
                                                     lan_only=lan_only)
        return self._optimal[lan_only]

    def mismatches(self, *, lan_only: bool = False) -> int:
        """Pairs whose selected metric differs from the shortest path (or that have a route
        where there is no path, or none where there is one within the hop limit)."""
        optimal = self.optimal(lan_only=lan_only)
        wrong = 0
        for destination, best in optimal.items():
            for station, table in self.tables.items():
                if station == destination:
                    continue
                route = table.best_lan_only(destination) if lan_only else table.best(destination)
                expected = best.get(station)
                if expected is None:
                    wrong += route is not None
                elif expected[1] <= self.hop_limit:
                    wrong += route is None or route.metric != expected[0]
        return wrong

    def converged(self) -> bool:
        return self.mismatches() == 0 and self.mismatches(lan_only=True) == 0

    def max_hops(self) -> int:
        return max(hops for best in self.optimal().values() for _, hops in best.values())

    # --- events -----------------------------------------------------------------------------

    def _at(self, when: float, kind: str, *args: Any) -> None:
        heapq.heappush(self._queue, (when, next(self._order), kind, args))

    def _on_tick(self) -> None:
        for station, table in self.tables.items():
            out = table.expire(self.now)
            if out:
                self._send(station, out)
                self._check(station, None)
        self._at(self.now + self.tick, "tick")

    def _on_periodic(self, station: str) -> None:
        table = self.tables[station]
        updates = table.updates_to_send(self.now, full=True)
        self._send(station, [Outgoing(None, update) for update in updates])
        self._at(self.now + self.interval, "periodic", station)

    def _on_detect_down(self, a: str, b: str, generation: int) -> None:
        if self.links[_key(a, b)].generation != generation:
            return
        for here, there in ((a, b), (b, a)):
            self._send(here, self.tables[here].remove_neighbour(there, now=self.now))
            self._check(here, None)

    def _on_detect_up(self, a: str, b: str, generation: int) -> None:
        link = self.links[_key(a, b)]
        if link.generation != generation:
            return
        for here, there in ((a, b), (b, a)):
            out = self.tables[here].add_neighbour(there, cost=link.cost, rf=link.rf,
                                                  now=self.now, interval=self.interval)
            self._send(here, out)
            self._check(here, None)

    def _on_deliver(self, sender: str, receiver: str, generation: int,
                    messages: list[Message]) -> None:
        link = self.links[_key(sender, receiver)]
        if not link.up or link.generation != generation:
            return
        self.counters.deliveries += 1
        table = self.tables[receiver]
        destinations = [m.destination for m in messages if isinstance(m, Update)]
        before = [(table.next_hop(d), table.next_hop(d, lan_only=True)) for d in destinations]
        out: list[Outgoing] = []
        for message in messages:
            out += table.receive(sender, message, now=self.now)
        changed = [d for d, old in zip(destinations, before, strict=True)
                   if old != (table.next_hop(d), table.next_hop(d, lan_only=True))]
        if changed:
            self._check(receiver, changed)
        self._send(receiver, out)

    # --- sending and checking ---------------------------------------------------------------

    def _on_flush(self, station: str) -> None:
        self._flush_due.discard(station)
        updates = self.tables[station].updates_to_send(self.now, full=False)
        self._send(station, [Outgoing(None, update) for update in updates])

    def _send(self, station: str, out: list[Outgoing]) -> None:
        if station not in self._flush_due and self.tables[station].triggered_pending:
            self._flush_due.add(station)
            self._at(self.now + TRIGGER_DELAY, "flush", station)
        if not out:
            return
        table = self.tables[station]
        neighbours = {n.station_id for n in table.neighbours()}
        broadcast = [o.message for o in out if o.to is None]
        for link in self.adjacent[station]:
            other = link.other(station)
            if other not in neighbours:
                continue
            batch = list(broadcast) + [o.message for o in out if o.to == other]
            if batch:
                self._transmit(station, link, batch)

    def _transmit(self, station: str, link: Link, batch: list[Message]) -> None:
        updates = [m for m in batch if isinstance(m, Update)]
        size = _size(updates_to_wire(updates, lan=not link.rf)) if updates else 0
        messages = 1 if updates else 0
        for message in batch:
            if isinstance(message, SeqnoRequest):
                size += _size(request_to_wire(message))
                messages += 1
        self.counters.bytes[station] = self.counters.bytes.get(station, 0) + size
        self.counters.messages += messages
        if not link.up:
            return
        receiver = link.other(station)
        arrival = max(self.now + link.latency, self._last_arrival.get((station, receiver), 0.0))
        self._last_arrival[(station, receiver)] = arrival
        self._at(arrival, "deliver", station, receiver, link.generation, batch)

    def _check(self, station: str, destinations: list[str] | None) -> None:
        table = self.tables[station]
        for destination in destinations if destinations is not None else list(self.tables):
            for lan_only in (False, True):
                if table.next_hop(destination, lan_only=lan_only) is not None and \
                        self._loops_from(station, destination, lan_only):
                    self.loops.append((self.now, station, destination, lan_only))

    def _loops_from(self, station: str, destination: str, lan_only: bool) -> bool:
        seen = {station}
        node: str | None = station
        while node is not None and node != destination:
            node = self.tables[node].next_hop(destination, lan_only=lan_only)
            if node in seen:
                return True
            if node is not None:
                seen.add(node)
        return False


def shortest_paths(stations: Iterable[str], adjacent: dict[str, list[Link]], *,
                   lan_only: bool = False) -> dict[str, dict[str, tuple[int, int]]]:
    """Dijkstra from every destination over links that are up: {destination: {station:
    (metric, hops)}}, ties broken by fewer hops."""
    result: dict[str, dict[str, tuple[int, int]]] = {}
    for destination in stations:
        best: dict[str, tuple[int, int]] = {destination: (0, 0)}
        heap = [(0, 0, destination)]
        while heap:
            metric, hops, station = heapq.heappop(heap)
            if best.get(station, (INFINITY, 0)) < (metric, hops):
                continue
            for link in adjacent[station]:
                if not link.up or (lan_only and link.rf):
                    continue
                other = link.other(station)
                candidate = (metric + link.cost, hops + 1)
                if candidate[0] < INFINITY and candidate < best.get(other, (INFINITY, 0)):
                    best[other] = candidate
                    heapq.heappush(heap, (*candidate, other))
        result[destination] = best
    return result


def random_geometric(count: int, *, seed: int, degree: float = 8.0,
                     rf_share: float = 0.1) -> tuple[list[str], list[Link]]:
    """`count` stations in the unit square, linked when closer than the radius that gives about
    `degree` neighbours, widened until the graph is connected. Costs from `mesh.link_cost`:
    RTT 2 ms + 200 ms per unit of distance, loss up to 5 %; a share `rf_share` of the links is
    RF (base 512, a stand-in until the radio link brings its own). Pairs whose shortest path
    is longer than the hop limit are left out of the checks (see `Mesh.mismatches`)."""
    rng = random.Random(seed)
    stations = [f"{rng.getrandbits(128):032x}" for _ in range(count)]
    points = {s: (rng.random(), rng.random()) for s in stations}
    radius = math.sqrt(degree / (math.pi * count))
    while True:
        links = []
        adjacent: dict[str, list[Link]] = {s: [] for s in stations}
        for a, b in itertools.combinations(stations, 2):
            distance = math.dist(points[a], points[b])
            if distance <= radius:
                rtt = 0.002 + 0.2 * distance
                rf = rng.random() < rf_share
                link_cost = cost(rtt_s=rtt, loss=rng.uniform(0, 0.05),
                                 base=512 if rf else LAN_BASE)
                link = Link(a, b, link_cost, rtt / 2, rf=rf)
                links.append(link)
                adjacent[a].append(link)
                adjacent[b].append(link)
        if len(shortest_paths(stations[:1], adjacent)[stations[0]]) == count:
            return stations, links
        radius *= 1.05
