"""The mesh routing table: a Babel-style distance vector over additive link costs (no Django).

Each station is both a destination and the source of its own routes (a station id plays the
part of Babel's router-id and prefix at once). The rules are RFC 8966's:

- Sequence numbers (3.2.1): 16-bit, compared modulo 2^16 (`seqno_newer`). Each station numbers
  its own advertisements; `seqno` is the caller's to store and hand back after a restart (a
  station that comes back with an older number still recovers: an advertisement of itself with a
  newer seqno, or a seqno request, moves its number past it).
- Feasibility (3.5.1): per destination the table keeps a *feasibility distance* (the source
  table): the (seqno, metric) it has advertised, lowered whenever it advertises a better one. An
  update (seqno s, metric m as the neighbour advertised it) is feasible when there is no
  feasibility distance yet, or s is newer, or s is the same and m is strictly smaller, and a
  retraction (metric INFINITY) always is. Only feasible routes are selected, so along any chain
  of selected next hops the feasibility distances strictly decrease: no routing loop, at any
  instant, whatever the delays, hence no counting to infinity.
- Selection (3.6): the lowest metric (neighbour's advertised metric + the link's cost) among
  feasible routes within the hop limit; a tie keeps the current route.
- Updates (3.7): `updates_to_send(now, full=True)` is the periodic dump (own entry with metric 0,
  every selected route, recent retractions); state changes return triggered updates at once:
  a new or lost destination, a new seqno, or a metric change of at least `trigger_delta`.
  Sending an update is what lowers a feasibility distance, so call `updates_to_send` only to send.
- Expiry (3.5.3, 3.7.2): a route not refreshed for 3.5 of its neighbour's update intervals is
  retracted (metric INFINITY) and later flushed; a destination left with no route is advertised
  as a retraction, and its source entry is garbage-collected after `gc_hold` seconds.
- Starvation (3.8): when a destination has routes but none is feasible, the table asks its
  neighbours for a newer seqno (SEQNO_REQUEST with the feasibility seqno + 1 and a hop count);
  when the selected route's neighbour sends an unfeasible update (its metric rose), the request
  goes to it and, unless another feasible route exists, the update is ignored (3.5.3 allows it)
  so the route stays usable until the newer seqno arrives instead of vanishing meanwhile. A
  request for this station increments its seqno (by 1, as the RFC says) and advertises it; a
  station that has a route with at least the requested seqno answers with an update; otherwise
  the request is forwarded (hop count - 1, never back to where it came from, duplicates held
  back for `request_hold` seconds) to the next hop of its route.

The LAN-only view. Some traffic must never go on the air, so the table answers "best route over
LAN/IP links only" too. It runs the same protocol twice, as two topologies: the full view over all
neighbours and the LAN view over non-RF neighbours only, each with its own routes, feasibility
distances, selection and seqno requests (a request carries `lan_only`). Every update carries both
triples, (seqno, metric, hops) of the full view and of the LAN view; a receiver on an RF link
ignores the LAN triple, a receiver on a LAN link feeds it to its LAN view. So a LAN-view route is
RF-free by induction (its neighbour is LAN and advertised a route from its own LAN view), and the
LAN view is loop-free for the same reason as the full one. On the wire the LAN triple is omitted
when it equals the full one, the usual case, so the second view costs nothing on an all-LAN mesh.
The sequence number is shared: one counter per station numbers both views.

Time is always passed in (`now`, seconds on any monotonic clock); nothing here reads a clock.
Every method that changes state returns the seqno requests to send now, as `Outgoing` (to one
neighbour); `add_neighbour` also returns the full table for the new neighbour. Triggered updates
(retractions included) are coalesced: they wait until the daemon calls
`updates_to_send(now, full=False)`, which it does `TRIGGER_DELAY` seconds after
`triggered_pending` turns true, and send to every neighbour. Sending each change at once instead
floods the mesh while it converges (each station's metric improves many times in a row as news
arrives over paths of different latency: 670,000 messages in the first 0.3 s of a 200-station
cold start in bench/routing; coalesced, the whole cold start converges within 2 s).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from mesh.link_cost import INFINITY

SEQNO_MODULUS = 1 << 16
HOP_LIMIT = 10
DEFAULT_INTERVAL = 16.0  # seconds between periodic updates on a LAN link
EXPIRY_INTERVALS = 3.5  # a route expires after this many missed update intervals
GC_HOLD = 180.0  # seconds a lost destination's source entry (and its retraction) is kept
REQUEST_HOLD = 2.0  # seconds before the same seqno request is sent or forwarded again
TRIGGER_DELAY = 0.2  # seconds a triggered update waits for more changes to go with it
TRIGGER_DELTA = 1  # a metric change this large is sent at once (1: any change; see below)
MAX_HOPS_FIELD = 255

UPDATE_TYPE = "ROUTE_UPDATE"
SEQNO_REQUEST_TYPE = "SEQNO_REQUEST"


def seqno_newer(a: int, b: int) -> bool:
    """True when seqno `a` is newer than `b` modulo 2^16 (RFC 8966 section 3.2.1)."""
    return 0 < (a - b) % SEQNO_MODULUS < SEQNO_MODULUS // 2


def seqno_add(seqno: int, n: int = 1) -> int:
    """`seqno` + `n` modulo 2^16."""
    return (seqno + n) % SEQNO_MODULUS


def is_feasible(seqno: int, metric: int, distance: tuple[int, int] | None) -> bool:
    """Babel's feasibility condition for an advertised (seqno, metric) against a feasibility
    distance (seqno, metric), None when the table has none for that destination."""
    if metric >= INFINITY or distance is None:
        return True
    fd_seqno, fd_metric = distance
    return seqno_newer(seqno, fd_seqno) or (seqno == fd_seqno and metric < fd_metric)


@dataclass(frozen=True, slots=True)
class Update:
    """One destination as a station advertises it: the full view's (seqno, metric, hops) and the
    LAN-only view's. `metric` is the sender's own metric; the receiver adds its link's cost."""

    destination: str
    seqno: int
    metric: int
    hops: int
    lan_seqno: int
    lan_metric: int
    lan_hops: int

    @property
    def is_retraction(self) -> bool:
        return self.metric >= INFINITY and self.lan_metric >= INFINITY


@dataclass(frozen=True, slots=True)
class SeqnoRequest:
    """A request for `destination`'s advertisement with a seqno of at least `seqno`, allowed
    `hops` more hops; `lan_only` when it is about the LAN-only view."""

    destination: str
    seqno: int
    hops: int
    lan_only: bool = False


Message = Update | SeqnoRequest


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send: to one neighbour, or to every neighbour when `to` is None."""

    to: str | None
    message: Message


@dataclass(frozen=True, slots=True)
class Route:
    """A selected route as the operator sees it (next_hop None: unreachable, being retracted)."""

    destination: str
    next_hop: str | None
    metric: int
    hops: int
    seqno: int
    age: float


@dataclass(slots=True)
class Neighbour:
    """A station at the other end of a live link, as the daemon reports it."""

    station_id: str
    cost: int
    rf: bool
    interval: float


class _Entry:
    """What one neighbour last advertised for one destination (in one view)."""

    __slots__ = ("advertised", "expires", "hops", "neighbour", "seqno", "updated")

    def __init__(self, neighbour: str, seqno: int, advertised: int, hops: int, updated: float,
                 expires: float) -> None:
        self.neighbour = neighbour
        self.seqno = seqno
        self.advertised = advertised
        self.hops = hops
        self.updated = updated
        self.expires = expires


class _Source:
    """The feasibility distance for one destination, and when it was last advertised finite."""

    __slots__ = ("metric", "seqno", "touched")

    def __init__(self, seqno: int, metric: int, touched: float) -> None:
        self.seqno = seqno
        self.metric = metric
        self.touched = touched


class _View:
    """One topology: the full view (every neighbour) or the LAN-only view (no RF neighbour)."""

    def __init__(self, lan_only: bool) -> None:
        self.lan_only = lan_only
        self.entries: dict[str, dict[str, _Entry]] = {}
        self.selected: dict[str, _Entry] = {}
        self.sources: dict[str, _Source] = {}
        self.advertised: dict[str, tuple[int, int, int]] = {}
        self.requested: dict[str, tuple[int, float]] = {}
        self.forwarded: dict[str, tuple[int, float]] = {}
        # destination -> neighbour whose unfeasible update for our selected route we ignored:
        # its newer seqno is asked for until it comes, the route changes or expires.
        self.kept: dict[str, str] = {}

    def distance(self, destination: str) -> tuple[int, int] | None:
        source = self.sources.get(destination)
        return None if source is None else (source.seqno, source.metric)


class RoutingTable:
    """The routing table of station `self_id` (see the module docstring).

    The daemon reports neighbours (`add_neighbour`, `set_neighbour_cost`, `remove_neighbour`),
    feeds received messages (`receive_update`, `receive_seqno_request`, or `receive`), calls
    `expire(now)` about once a second, `updates_to_send(now, full=True)` every update interval
    and `updates_to_send(now, full=False)` TRIGGER_DELAY after `triggered_pending` turns true,
    and sends whatever these return. It stores `seqno` and passes it back on restart.
    """

    def __init__(self, self_id: str, seqno: int = 0, *, hop_limit: int = HOP_LIMIT,
                 gc_hold: float = GC_HOLD, request_hold: float = REQUEST_HOLD,
                 trigger_delta: int = TRIGGER_DELTA) -> None:
        if not 0 <= seqno < SEQNO_MODULUS:
            raise ValueError(f"a seqno is a 16-bit number, got {seqno}")
        if not 1 <= hop_limit <= MAX_HOPS_FIELD:
            raise ValueError(f"the hop limit must be between 1 and {MAX_HOPS_FIELD}")
        self.self_id = self_id
        self.seqno = seqno
        self.hop_limit = hop_limit
        self.gc_hold = gc_hold
        self.request_hold = request_hold
        self.trigger_delta = trigger_delta
        self._neighbours: dict[str, Neighbour] = {}
        self._full = _View(lan_only=False)
        self._lan = _View(lan_only=True)
        self._pending: dict[str, None] = {}  # destinations with a triggered update due, in order
        self._deadline = math.inf  # nothing can expire before this time

    # --- neighbours -----------------------------------------------------------------------

    def neighbours(self) -> list[Neighbour]:
        """The neighbours as last reported (copies)."""
        return [replace(neighbour) for neighbour in self._neighbours.values()]

    def add_neighbour(self, neighbour: str, *, cost: int, rf: bool, now: float,
                      interval: float = DEFAULT_INTERVAL) -> list[Outgoing]:
        """A link to `neighbour` is up (cost from `mesh.link_cost`, rf: whether it goes on the
        air, interval: how often it sends periodic updates). Returns the full table for it."""
        if neighbour == self.self_id:
            raise ValueError("a station cannot be its own neighbour")
        _check_cost(cost)
        if interval <= 0:
            raise ValueError(f"an update interval must be positive, got {interval}")
        if neighbour in self._neighbours:
            out = self.set_neighbour_cost(neighbour, cost=cost, now=now, interval=interval)
            return out + [Outgoing(neighbour, u) for u in self._dump(now)]
        self._neighbours[neighbour] = Neighbour(neighbour, cost, rf, interval)
        return [Outgoing(neighbour, u) for u in self._dump(now)]

    def set_neighbour_cost(self, neighbour: str, *, cost: int, now: float,
                           interval: float | None = None) -> list[Outgoing]:
        """The link to `neighbour` was measured again; its routes are re-selected."""
        _check_cost(cost)
        known = self._neighbours.get(neighbour)
        if known is None:
            raise KeyError(f"{neighbour} is not a neighbour; add it first")
        if interval is not None:
            if interval <= 0:
                raise ValueError(f"an update interval must be positive, got {interval}")
            known.interval = interval
        if known.cost == cost:
            return []
        known.cost = cost
        out: list[Outgoing] = []
        for view in self._views_for(known):
            for destination, entries in list(view.entries.items()):
                if neighbour in entries:
                    out += self._select(view, destination, now)
        return out

    def remove_neighbour(self, neighbour: str, *, now: float) -> list[Outgoing]:
        """The link to `neighbour` is down: every route through it is gone at once."""
        known = self._neighbours.pop(neighbour, None)
        if known is None:
            return []
        out: list[Outgoing] = []
        for view in self._views_for(known):
            for destination, entries in list(view.entries.items()):
                if entries.pop(neighbour, None) is not None:
                    if not entries:
                        del view.entries[destination]
                    out += self._select(view, destination, now)
        return out

    # --- receiving --------------------------------------------------------------------------

    def receive(self, neighbour: str, message: Message, *, now: float) -> list[Outgoing]:
        """Feed one decoded message from `neighbour`."""
        if isinstance(message, Update):
            return self.receive_update(
                neighbour, destination=message.destination, seqno=message.seqno,
                metric=message.metric, hops=message.hops, now=now, lan_seqno=message.lan_seqno,
                lan_metric=message.lan_metric, lan_hops=message.lan_hops)
        return self.receive_seqno_request(
            neighbour, destination=message.destination, seqno=message.seqno, hops=message.hops,
            now=now, lan_only=message.lan_only)

    def receive_update(self, neighbour: str, *, destination: str, seqno: int, metric: int,
                       hops: int, now: float, lan_seqno: int | None = None,
                       lan_metric: int | None = None,
                       lan_hops: int | None = None) -> list[Outgoing]:
        """An update from `neighbour`: its metric to `destination` (before this link's cost),
        the seqno and its hop count; the LAN triple defaults to the full one. An update from a
        station that is not (or no longer) a neighbour is ignored."""
        _check_advert(seqno, metric, hops)
        known = self._neighbours.get(neighbour)
        if known is None:
            return []
        if destination == self.self_id:
            # Our own advertisement, from before a restart that lost the stored seqno.
            if seqno_newer(seqno, self.seqno):
                self.seqno = seqno_add(seqno)
                self._pending[destination] = None
            return []
        out = self._receive(self._full, known, destination, seqno, metric, hops, now)
        if not known.rf:
            if lan_metric is None:
                lan_seqno, lan_metric, lan_hops = seqno, metric, hops
            else:
                lan_seqno = seqno if lan_seqno is None else lan_seqno
                lan_hops = hops if lan_hops is None else lan_hops
                _check_advert(lan_seqno, lan_metric, lan_hops)
            out += self._receive(self._lan, known, destination, lan_seqno, lan_metric,
                                 lan_hops, now)
        return out

    def receive_seqno_request(self, neighbour: str, *, destination: str, seqno: int, hops: int,
                              now: float, lan_only: bool = False) -> list[Outgoing]:
        """A seqno request from `neighbour` (RFC 8966 section 3.8.1.2): answer it with an update
        if this station can, else forward it one hop closer to `destination`."""
        _check_advert(seqno, 0, hops)
        known = self._neighbours.get(neighbour)
        if known is None or (lan_only and known.rf):
            return []
        if destination == self.self_id:
            if seqno_newer(seqno, self.seqno):
                self.seqno = seqno_add(self.seqno)
            self._pending[destination] = None
            return []
        view = self._lan if lan_only else self._full
        selected = view.selected.get(destination)
        if selected is not None and not seqno_newer(seqno, selected.seqno):
            self._pending[destination] = None
            return []
        if hops < 2:
            return []
        last = view.forwarded.get(destination)
        if last is not None and not seqno_newer(seqno, last[0]) and now - last[1] < \
                self.request_hold:
            return []
        next_hop = self._request_next_hop(view, destination, exclude=neighbour)
        if next_hop is None:
            return []
        view.forwarded[destination] = (seqno, now)
        return [Outgoing(next_hop, SeqnoRequest(destination, seqno, hops - 1, lan_only))]

    # --- time -------------------------------------------------------------------------------

    def expire(self, now: float) -> list[Outgoing]:
        """Retract routes not refreshed for 3.5 update intervals, flush old retractions, resend
        unanswered seqno requests, forget destinations lost for `gc_hold`. Cheap when nothing
        is due, so it can be called often."""
        if now < self._deadline:
            return []
        self._deadline = deadline = math.inf
        out: list[Outgoing] = []
        for view in (self._full, self._lan):
            for destination, entries in list(view.entries.items()):
                changed = False
                for neighbour, entry in list(entries.items()):
                    if entry.expires <= now:
                        changed = True
                        if entry.advertised < INFINITY:
                            entry.advertised = INFINITY
                            entry.expires = now + self._hold(neighbour)
                        else:
                            del entries[neighbour]
                            continue
                    deadline = min(deadline, entry.expires)
                if not entries:
                    del view.entries[destination]
                if changed or destination in view.requested:
                    out += self._select(view, destination, now)
            for destination in list(view.kept):
                neighbour = self._kept(view, destination)
                if neighbour is not None:
                    out += self._request(view, destination, now, to=neighbour)
            for destination, (_, sent) in list(view.requested.items()):
                if destination not in view.entries:
                    del view.requested[destination]
                else:
                    deadline = min(deadline, sent + self.request_hold)
            for destination, (_, sent) in list(view.forwarded.items()):
                if now - sent >= self.request_hold:
                    del view.forwarded[destination]
            for destination, source in list(view.sources.items()):
                if destination in view.selected:
                    continue
                if now - source.touched >= self.gc_hold and destination not in view.entries:
                    del view.sources[destination]
                    view.advertised.pop(destination, None)
                    view.requested.pop(destination, None)
                else:
                    deadline = min(deadline, source.touched + self.gc_hold)
        self._deadline = min(self._deadline, deadline)
        return out

    # --- sending ----------------------------------------------------------------------------

    def updates_to_send(self, now: float, *, full: bool) -> list[Update]:
        """What to advertise to every neighbour: with `full`, the periodic dump (own entry, every
        selected route of either view, retractions of destinations lost within `gc_hold`);
        without, only the triggered updates still due. Lowers feasibility distances: send it."""
        destinations = list(self._pending)
        self._pending.clear()
        if full:
            return self._dump(now)
        return [self._advertise(destination, now) for destination in destinations]

    @property
    def triggered_pending(self) -> bool:
        """Whether triggered updates are waiting for `updates_to_send(now, full=False)`."""
        return bool(self._pending)

    def bump_seqno(self) -> int:
        """Increase this station's seqno (e.g. once after a restart); it is advertised with the
        next `updates_to_send`. Returns the new value, for the caller to store."""
        self.seqno = seqno_add(self.seqno)
        self._pending[self.self_id] = None
        return self.seqno

    # --- reading ----------------------------------------------------------------------------

    def best(self, destination: str) -> Route | None:
        """The selected route to `destination` over any link, or None."""
        return self._route(self._full, destination)

    def best_lan_only(self, destination: str) -> Route | None:
        """The selected route to `destination` over LAN/IP links only (no hop on the air)."""
        return self._route(self._lan, destination)

    def next_hop(self, destination: str, *, lan_only: bool = False) -> str | None:
        """Only the neighbour to forward to (the hot path of forwarding), or None."""
        entry = (self._lan if lan_only else self._full).selected.get(destination)
        return None if entry is None else entry.neighbour

    def routes(self, *, lan_only: bool = False, now: float | None = None,
               include_unreachable: bool = False) -> list[Route]:
        """Every selected route (age: seconds since its last update at `now`, 0 without `now`);
        with `include_unreachable`, destinations being retracted too, with next_hop None and
        metric INFINITY, until they are forgotten."""
        view = self._lan if lan_only else self._full
        result = [self._route(view, destination, now) for destination in view.selected]
        if include_unreachable:
            for destination, source in view.sources.items():
                if destination not in view.selected:
                    age = 0.0 if now is None else now - source.touched
                    result.append(Route(destination, None, INFINITY, 0, source.seqno, age))
        return [route for route in result if route is not None]

    # --- internals --------------------------------------------------------------------------

    def _views_for(self, neighbour: Neighbour) -> tuple[_View, ...]:
        return (self._full,) if neighbour.rf else (self._full, self._lan)

    def _hold(self, neighbour: str) -> float:
        known = self._neighbours.get(neighbour)
        return EXPIRY_INTERVALS * (known.interval if known else DEFAULT_INTERVAL)

    def _metric(self, entry: _Entry) -> int:
        if entry.advertised >= INFINITY:
            return INFINITY
        return min(INFINITY, entry.advertised + self._neighbours[entry.neighbour].cost)

    def _route(self, view: _View, destination: str, now: float | None = None) -> Route | None:
        entry = view.selected.get(destination)
        if entry is None:
            return None
        age = 0.0 if now is None else max(0.0, now - entry.updated)
        return Route(destination, entry.neighbour, self._metric(entry), entry.hops, entry.seqno,
                     age)

    def _receive(self, view: _View, neighbour: Neighbour, destination: str, seqno: int,
                 metric: int, hops: int, now: float) -> list[Outgoing]:
        entries = view.entries.get(destination)
        entry = None if entries is None else entries.get(neighbour.station_id)
        if metric >= INFINITY:
            if entry is None or entry.advertised >= INFINITY:
                return []
            entry.seqno, entry.advertised, entry.updated = seqno, INFINITY, now
            entry.expires = now + EXPIRY_INTERVALS * neighbour.interval
            self._deadline = min(self._deadline, entry.expires)
            return self._select(view, destination, now)
        expires = now + EXPIRY_INTERVALS * neighbour.interval
        if entry is not None and entry.seqno == seqno and entry.advertised == metric and \
                entry.hops == hops + 1 and destination not in view.requested:
            # The periodic repeat of what we hold: nothing to re-select (the usual case).
            entry.updated, entry.expires = now, expires
            return []
        distance = view.distance(destination)
        feasible = is_feasible(seqno, metric, distance)
        was_selected = entry is not None and view.selected.get(destination) is entry
        if was_selected and not feasible and not self._feasible_alternative(
                view, destination, distance, entry):
            # RFC 8966 3.5.3: an unfeasible update for the selected route from its own
            # neighbour MAY be ignored. With no other feasible route, taking it would leave us
            # with none until the destination's newer seqno comes back (a hole of seconds each
            # time a link's cost rises): keep the route as it was (still feasible, so still
            # loop-free), ask for the newer seqno (3.8.2.2) and let the old entry expire if
            # none comes.
            view.kept[destination] = neighbour.station_id
            return self._request(view, destination, now, to=neighbour.station_id)
        if view.kept.get(destination) == neighbour.station_id:
            del view.kept[destination]
        if entry is None:
            if entries is None:
                entries = view.entries[destination] = {}
            entries[neighbour.station_id] = _Entry(neighbour.station_id, seqno, metric,
                                                   hops + 1, now, expires)
        else:
            entry.seqno, entry.advertised, entry.hops = seqno, metric, hops + 1
            entry.updated, entry.expires = now, expires
        self._deadline = min(self._deadline, expires)
        out = self._select(view, destination, now)
        if was_selected and not feasible and destination in view.selected and \
                destination not in view.requested:
            # RFC 8966 3.8.2.2: our next hop went unfeasible; ask it for a newer seqno (when
            # starving, or when another unfeasible route is better, _select already asked).
            out += self._request(view, destination, now, to=neighbour.station_id)
        return out

    @staticmethod
    def _kept(view: _View, destination: str) -> str | None:
        """The neighbour whose unfeasible update we ignored, while its route is still ours."""
        neighbour = view.kept.get(destination)
        selected = view.selected.get(destination)
        if neighbour is not None and (selected is None or selected.neighbour != neighbour):
            del view.kept[destination]
            return None
        return neighbour

    def _feasible_alternative(self, view: _View, destination: str,
                              distance: tuple[int, int] | None, entry: _Entry) -> bool:
        """Whether a route other than `entry` could be selected for `destination` now."""
        return any(other is not entry and other.advertised < INFINITY
                   and other.hops <= self.hop_limit and self._metric(other) < INFINITY
                   and is_feasible(other.seqno, other.advertised, distance)
                   for other in view.entries.get(destination, {}).values())

    def _select(self, view: _View, destination: str, now: float) -> list[Outgoing]:
        """Re-select the route to `destination`; queue a triggered update on a significant
        change; ask for a newer seqno when only unfeasible routes are left."""
        current = view.selected.get(destination)
        distance = view.distance(destination)
        best: _Entry | None = None
        best_metric = INFINITY
        unfeasible: _Entry | None = None  # the best route the feasibility condition refuses
        unfeasible_metric = INFINITY
        for entry in view.entries.get(destination, {}).values():
            if entry.advertised >= INFINITY or entry.hops > self.hop_limit:
                continue
            metric = self._metric(entry)
            if metric >= INFINITY:
                continue
            if not is_feasible(entry.seqno, entry.advertised, distance):
                if metric < unfeasible_metric:
                    unfeasible, unfeasible_metric = entry, metric
                continue
            if metric < best_metric or (metric == best_metric and entry is current):
                best, best_metric = entry, metric
        if best is None:
            view.selected.pop(destination, None)
            new = None
            if distance is not None:
                self._deadline = min(self._deadline, view.sources[destination].touched +
                                     self.gc_hold)
        else:
            view.selected[destination] = best
            new = (best.seqno, best_metric, best.hops)
        if _significant(view.advertised.get(destination), new, self.trigger_delta):
            self._pending[destination] = None
        if unfeasible is None or unfeasible_metric >= best_metric:
            if self._kept(view, destination) is None:
                view.requested.pop(destination, None)
            return []
        # Starving (no feasible route: ask every neighbour, RFC 8966 3.8.2.1), or a refused
        # route would be better than the selected one (ask its neighbour, as babeld does):
        # a newer seqno from the destination makes it feasible.
        return self._request(view, destination, now,
                             to=None if best is None else unfeasible.neighbour)

    def _request(self, view: _View, destination: str, now: float, *,
                 to: str | None) -> list[Outgoing]:
        source = view.sources.get(destination)
        if source is None:
            return []
        seqno = seqno_add(source.seqno)
        last = view.requested.get(destination)
        if last is not None and last[0] == seqno and now - last[1] < self.request_hold:
            return []
        view.requested[destination] = (seqno, now)
        self._deadline = min(self._deadline, now + self.request_hold)
        request = SeqnoRequest(destination, seqno, self.hop_limit, view.lan_only)
        if to is not None:
            return [Outgoing(to, request)]
        return [Outgoing(neighbour.station_id, request)
                for neighbour in self._neighbours.values()
                if not (view.lan_only and neighbour.rf)]

    def _request_next_hop(self, view: _View, destination: str, *, exclude: str) -> str | None:
        selected = view.selected.get(destination)
        if selected is not None and selected.neighbour != exclude:
            return selected.neighbour
        candidates = [entry for entry in view.entries.get(destination, {}).values()
                      if entry.neighbour != exclude and entry.advertised < INFINITY]
        if not candidates:
            return None
        return min(candidates, key=self._metric).neighbour

    def _dump(self, now: float) -> list[Update]:
        destinations = dict.fromkeys([self.self_id, *self._full.selected, *self._lan.selected,
                                      *self._full.sources, *self._lan.sources])
        return [self._advertise(destination, now) for destination in destinations]

    def _advertise(self, destination: str, now: float) -> Update:
        if destination == self.self_id:
            return Update(destination, self.seqno, 0, 0, self.seqno, 0, 0)
        full = self._advert(self._full, destination, now)
        lan = self._advert(self._lan, destination, now)
        return Update(destination, *full, *lan)

    def _advert(self, view: _View, destination: str, now: float) -> tuple[int, int, int]:
        """What `view` advertises for `destination`, recording it as sent (feasibility distance
        lowered, or a retraction with the last seqno)."""
        entry = view.selected.get(destination)
        if entry is None:
            old = view.advertised.get(destination)
            source = view.sources.get(destination)
            seqno = old[0] if old else (source.seqno if source else 0)
            advert = (seqno, INFINITY, 0)
            if old is not None:
                view.advertised[destination] = advert
            return advert
        advert = (entry.seqno, self._metric(entry), entry.hops)
        view.advertised[destination] = advert
        source = view.sources.get(destination)
        if source is None:
            view.sources[destination] = _Source(advert[0], advert[1], now)
        else:
            if seqno_newer(advert[0], source.seqno) or (advert[0] == source.seqno and
                                                        advert[1] < source.metric):
                source.seqno, source.metric = advert[0], advert[1]
            source.touched = now
        return advert

def _significant(old: tuple[int, int, int] | None, new: tuple[int, int, int] | None,
                 delta: int) -> bool:
    """Whether a change of what a view advertises is worth a triggered update."""
    if new is None:
        return old is not None and old[1] < INFINITY
    if old is None or old[1] >= INFINITY or old[0] != new[0]:
        return True
    return abs(new[1] - old[1]) >= delta


def _check_cost(cost: int) -> None:
    if not 1 <= cost <= INFINITY:
        raise ValueError(f"a link cost is between 1 and {INFINITY}, got {cost}")


def _check_advert(seqno: int, metric: int, hops: int) -> None:
    if not 0 <= seqno < SEQNO_MODULUS:
        raise ValueError(f"a seqno is a 16-bit number, got {seqno}")
    if not 0 <= metric <= INFINITY:
        raise ValueError(f"a metric is between 0 and {INFINITY}, got {metric}")
    if not 0 <= hops <= MAX_HOPS_FIELD:
        raise ValueError(f"a hop count is between 0 and {MAX_HOPS_FIELD}, got {hops}")


# --- wire encoding (JSON) ------------------------------------------------------------------


def update_row(update: Update, *, lan: bool = True) -> list[Any]:
    """One update as a compact JSON row: [destination, seqno, metric, hops] and, only when the
    LAN view differs and `lan` (False on an RF link, whose receiver ignores it), the LAN
    triple after it."""
    row: list[Any] = [update.destination, update.seqno, update.metric, update.hops]
    if lan and (update.lan_seqno, update.lan_metric, update.lan_hops) != (
            update.seqno, update.metric, update.hops):
        row += [update.lan_seqno, update.lan_metric, update.lan_hops]
    return row


def updates_to_wire(updates: Iterable[Update], *, lan: bool = True) -> dict[str, Any]:
    """A batch of updates as one JSON payload: {"type": "ROUTE_UPDATE", "updates": [rows]}."""
    return {"type": UPDATE_TYPE, "updates": [update_row(u, lan=lan) for u in updates]}


def request_to_wire(request: SeqnoRequest) -> dict[str, Any]:
    """A seqno request as a JSON payload."""
    payload: dict[str, Any] = {"type": SEQNO_REQUEST_TYPE, "destination": request.destination,
                               "seqno": request.seqno, "hops": request.hops}
    if request.lan_only:
        payload["lan"] = True
    return payload


def to_wire(message: Message, *, lan: bool = True) -> dict[str, Any]:
    """Any one message as a JSON payload (an update becomes a batch of one)."""
    if isinstance(message, Update):
        return updates_to_wire([message], lan=lan)
    return request_to_wire(message)


def from_wire(payload: Mapping[str, Any]) -> list[Message]:
    """Decode a payload from `to_wire`/`updates_to_wire`; ValueError says what is wrong."""
    kind = payload.get("type")
    if kind == UPDATE_TYPE:
        rows = payload.get("updates")
        if not isinstance(rows, list):
            raise ValueError("a ROUTE_UPDATE needs a list 'updates'")
        return [_update_from_row(row) for row in rows]
    if kind == SEQNO_REQUEST_TYPE:
        destination = payload.get("destination")
        if not isinstance(destination, str) or not destination:
            raise ValueError("a SEQNO_REQUEST needs a station id 'destination'")
        seqno, hops = _integer(payload.get("seqno"), "seqno"), _integer(payload.get("hops"),
                                                                        "hops")
        _check_advert(seqno, 0, hops)
        lan = payload.get("lan", False)
        if not isinstance(lan, bool):
            raise ValueError("'lan' must be true or false")
        return [SeqnoRequest(destination, seqno, hops, lan)]
    raise ValueError(f"not a routing message type: {kind!r}")


def _update_from_row(row: Any) -> Update:
    if not isinstance(row, list) or len(row) not in (4, 7):
        raise ValueError("an update row is [destination, seqno, metric, hops] with an optional "
                         "LAN [seqno, metric, hops] after it")
    destination = row[0]
    if not isinstance(destination, str) or not destination:
        raise ValueError("an update row starts with a station id")
    numbers = [_integer(value, "update field") for value in row[1:]]
    if len(numbers) == 3:
        numbers += numbers
    _check_advert(*numbers[:3])
    _check_advert(*numbers[3:])
    return Update(destination, *numbers)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return value
