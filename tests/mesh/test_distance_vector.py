"""The routing table: Babel's feasibility condition, selection, retractions, expiry, seqno
requests, the hop limit and the LAN-only view; and, over simulated meshes, no routing loop at any
step and shortest paths once quiet."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.routing.sim import Link, Mesh
from mesh.distance_vector import (
    EXPIRY_INTERVALS,
    INFINITY,
    Outgoing,
    RoutingTable,
    SeqnoRequest,
    Update,
    from_wire,
    is_feasible,
    seqno_add,
    seqno_newer,
    to_wire,
    update_row,
    updates_to_wire,
)

ALICE, BOB, CAROL, DAVE, ERIN = "alice", "bob", "carol", "dave", "erin"


def table(self_id: str = ALICE, *, seqno: int = 100, **neighbours: tuple[int, bool]
          ) -> RoutingTable:
    """A table with neighbours given as name=(cost, rf), all added at t=0."""
    routing = RoutingTable(self_id, seqno)
    for name, (cost, rf) in neighbours.items():
        routing.add_neighbour(name, cost=cost, rf=rf, now=0.0)
    return routing


def triggered(routing: RoutingTable, now: float = 9.0) -> list[Update]:
    """The triggered updates the daemon would flush now (coalesced, sent to every neighbour)."""
    return routing.updates_to_send(now, full=False)


def requests(out: list[Outgoing], *, lan_only: bool = False
             ) -> list[tuple[str | None, SeqnoRequest]]:
    """The seqno requests of one view (the LAN view asks the same of its LAN neighbours)."""
    return [(o.to, o.message) for o in out
            if isinstance(o.message, SeqnoRequest) and o.message.lan_only == lan_only]


# --- sequence numbers and feasibility ----------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "newer"), [
    (1, 0, True), (0, 1, False), (5, 5, False), (0, 0xFFFF, True), (0xFFFF, 0, False),
    (0x7FFF, 0, True), (0x8000, 0, False), (100, 0x8065, True), (0x8065, 100, False),
    (100, 0x8064, False), (0x8064, 100, False),  # exactly half way: neither is newer
])
def test_seqnos_compare_modulo_2_16(a: int, b: int, newer: bool) -> None:
    assert seqno_newer(a, b) is newer
    assert seqno_add(0xFFFF) == 0


def test_feasibility_condition() -> None:
    assert is_feasible(7, 500, None)
    assert is_feasible(8, 900, (7, 300))  # newer seqno, whatever the metric
    assert is_feasible(7, 299, (7, 300))  # same seqno, strictly smaller metric
    assert not is_feasible(7, 300, (7, 300))
    assert not is_feasible(6, 10, (7, 300))  # older seqno
    assert is_feasible(6, INFINITY, (7, 300))  # a retraction always is
    assert is_feasible(0, 900, (0xFFFF, 300))  # across the wrap


# --- selection, feasibility distances, triggered updates ------------------------------------


def test_the_cheapest_feasible_route_is_selected_and_advertised_with_the_link_cost_added() -> None:
    routing = table(bob=(96, False), carol=(200, False))
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=300, hops=2, now=1.0)
    assert [(u.destination, u.metric, u.hops) for u in triggered(routing)] == [(DAVE, 396, 3)]
    routing.receive_update(CAROL, destination=DAVE, seqno=3, metric=100, hops=1, now=1.0)
    route = routing.best(DAVE)
    assert route is not None
    assert (route.next_hop, route.metric, route.hops, route.seqno) == (CAROL, 300, 2, 3)
    assert routing.next_hop(DAVE) == CAROL
    dump = {u.destination: u for u in routing.updates_to_send(2.0, full=True)}
    assert dump[ALICE] == Update(ALICE, 100, 0, 0, 100, 0, 0)
    assert (dump[DAVE].metric, dump[DAVE].seqno) == (300, 3)
    [listed] = routing.routes(now=5.0)
    assert (listed.destination, listed.age) == (DAVE, 4.0)


def test_an_update_no_better_than_the_feasibility_distance_is_not_selected() -> None:
    routing = table(bob=(96, False), carol=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=200, hops=2, now=1.0)
    routing.updates_to_send(1.0, full=True)  # advertised (3, 296): the feasibility distance
    # Carol's 296 would be cheaper than Bob's route once it got worse, but it is not below the
    # distance we advertised: it might be our own route coming back (a loop).
    routing.receive_update(CAROL, destination=DAVE, seqno=3, metric=296, hops=3, now=2.0)
    out = routing.receive_update(BOB, destination=DAVE, seqno=3, metric=500, hops=2, now=3.0)
    # Bob's worse metric is unfeasible and no other route is feasible: the update is ignored
    # (RFC 8966 3.5.3), Bob's route stays as it was, and Bob is asked for seqno 4.
    route = routing.best(DAVE)
    assert route is not None and (route.next_hop, route.metric) == (BOB, 296)
    assert requests(out) == [(BOB, SeqnoRequest(DAVE, 4, 10, False))]
    assert triggered(routing) == []  # no retraction: nothing changed for our neighbours
    # A newer seqno is feasible at any metric: Carol's (4, 296) and then Bob's (4, 500).
    routing.receive_update(CAROL, destination=DAVE, seqno=4, metric=296, hops=3, now=4.0)
    routing.receive_update(BOB, destination=DAVE, seqno=4, metric=500, hops=2, now=4.0)
    route = routing.best(DAVE)
    assert route is not None and (route.next_hop, route.metric) == (CAROL, 392)


def test_an_unfeasible_update_of_the_selected_route_is_taken_when_another_route_is_feasible(
        ) -> None:
    routing = table(bob=(96, False), carol=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=200, hops=2, now=1.0)
    routing.receive_update(CAROL, destination=DAVE, seqno=3, metric=250, hops=2, now=1.0)
    routing.updates_to_send(1.0, full=True)  # distance (3, 296)
    out = routing.receive_update(BOB, destination=DAVE, seqno=3, metric=500, hops=2, now=2.0)
    # Carol's 250 is below the distance: she takes over, and Bob is asked for a newer seqno.
    assert routing.next_hop(DAVE) == CAROL
    assert requests(out) == [(BOB, SeqnoRequest(DAVE, 4, 10, False))]


def test_a_route_kept_through_an_unfeasible_update_expires_if_no_newer_seqno_comes() -> None:
    routing = table(bob=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=100, hops=1, now=0.0)
    routing.updates_to_send(0.0, full=True)
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=300, hops=1, now=1.0)
    assert routing.next_hop(DAVE) == BOB
    routing.expire(EXPIRY_INTERVALS * 16 + 1.0)  # Bob's interval is the default 16 s
    assert routing.best(DAVE) is None


def test_a_better_but_unfeasible_route_asks_its_neighbour_for_a_new_seqno() -> None:
    routing = table(bob=(96, False), carol=(96, False), erin=(10, False))
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=100, hops=1, now=1.0)
    routing.updates_to_send(1.0, full=True)  # distance (3, 196)
    routing.receive_update(CAROL, destination=DAVE, seqno=3, metric=150, hops=2, now=1.0)
    out = routing.receive_update(ERIN, destination=DAVE, seqno=3, metric=196, hops=2, now=1.0)
    assert requests(out) == []  # unfeasible, and 206 is no better than Bob's 196
    out = routing.receive_update(BOB, destination=DAVE, seqno=3, metric=190, hops=1, now=2.0)
    assert routing.next_hop(DAVE) == CAROL  # 246, feasible; Erin's 206 is refused
    assert requests(out) == [(ERIN, SeqnoRequest(DAVE, 4, 10, False))]
    routing.receive_update(ERIN, destination=DAVE, seqno=4, metric=196, hops=2, now=3.0)
    assert routing.next_hop(DAVE) == ERIN


def test_requests_are_held_back_then_resent_by_expire() -> None:
    routing = table(bob=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=3, metric=100, hops=1, now=0.0)
    routing.updates_to_send(0.0, full=True)
    first = routing.receive_update(BOB, destination=DAVE, seqno=3, metric=300, hops=1, now=1.0)
    assert len(requests(first)) == 1
    again = routing.receive_update(BOB, destination=DAVE, seqno=3, metric=300, hops=1, now=1.5)
    assert requests(again) == []
    assert requests(routing.expire(2.0)) == []
    assert requests(routing.expire(3.1)) == [(BOB, SeqnoRequest(DAVE, 4, 10, False))]


def test_ties_keep_the_current_route() -> None:
    routing = table(bob=(96, False), carol=(96, False))
    routing.receive_update(CAROL, destination=DAVE, seqno=1, metric=100, hops=1, now=0.0)
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=1, now=0.0)
    assert routing.next_hop(DAVE) == CAROL


def test_small_metric_changes_can_wait_for_the_periodic_update() -> None:
    routing = RoutingTable(ALICE, trigger_delta=32)
    routing.add_neighbour(BOB, cost=96, rf=False, now=0.0)
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=1, now=0.0)
    assert triggered(routing)
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=120, hops=1, now=1.0)
    assert not routing.triggered_pending
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=140, hops=1, now=2.0)
    assert triggered(routing)  # 40 more than advertised
    routing.receive_update(BOB, destination=DAVE, seqno=2, metric=140, hops=1, now=3.0)
    assert triggered(routing)  # a new seqno always goes out


def test_a_cheaper_link_cost_reselects() -> None:
    routing = table(bob=(96, False), carol=(300, False))
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=200, hops=1, now=0.0)
    routing.receive_update(CAROL, destination=DAVE, seqno=1, metric=50, hops=1, now=0.0)
    assert routing.next_hop(DAVE) == BOB  # 296 < 350
    routing.set_neighbour_cost(CAROL, cost=100, now=1.0)
    assert routing.next_hop(DAVE) == CAROL
    assert [u.metric for u in triggered(routing)] == [150]


# --- retraction, expiry, garbage collection ---------------------------------------------------


def test_a_retraction_is_always_accepted_and_propagated() -> None:
    routing = table(bob=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=9, metric=100, hops=1, now=0.0)
    routing.updates_to_send(0.0, full=True)
    routing.receive_update(BOB, destination=DAVE, seqno=2, metric=INFINITY, hops=1,
                                 now=1.0)
    assert routing.best(DAVE) is None
    [retraction] = triggered(routing)
    assert (retraction.destination, retraction.metric, retraction.seqno) == (DAVE, INFINITY, 9)
    assert retraction.is_retraction
    [unreachable] = routing.routes(include_unreachable=True, now=1.0)
    assert (unreachable.next_hop, unreachable.metric) == (None, INFINITY)
    # A retraction for a route we do not hold changes nothing.
    assert routing.receive_update(BOB, destination=ERIN, seqno=1, metric=INFINITY, hops=0,
                                  now=1.0) == []


def test_routes_expire_after_three_and_a_half_missed_intervals_then_are_forgotten() -> None:
    routing = RoutingTable(ALICE, gc_hold=180.0)
    routing.add_neighbour(BOB, cost=96, rf=False, now=0.0, interval=16.0)
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=1, now=0.0)
    routing.updates_to_send(0.0, full=True)
    assert routing.expire(16.0 * EXPIRY_INTERVALS - 0.1) == []
    assert routing.best(DAVE) is not None
    routing.expire(16.0 * EXPIRY_INTERVALS)
    assert routing.best(DAVE) is None
    assert [(u.destination, u.metric) for u in triggered(routing)] == [(DAVE, INFINITY)]
    # Still retracted in the periodic dump while held, then forgotten entirely.
    assert DAVE in {u.destination for u in routing.updates_to_send(100.0, full=True)}
    routing.expire(181.0)
    assert routing.routes(include_unreachable=True) == []
    assert {u.destination for u in routing.updates_to_send(182.0, full=True)} == {ALICE}


def test_a_refreshed_route_does_not_expire() -> None:
    routing = table(bob=(96, False))
    for now in range(0, 200, 16):
        routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=1, now=now)
        routing.expire(float(now))
    assert routing.best(DAVE) is not None


def test_a_lost_neighbour_takes_its_routes_with_it() -> None:
    routing = table(bob=(96, False), carol=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=1, now=0.0)
    routing.receive_update(CAROL, destination=DAVE, seqno=1, metric=150, hops=1, now=0.0)
    routing.updates_to_send(0.0, full=True)
    routing.remove_neighbour(BOB, now=1.0)
    assert routing.next_hop(DAVE) == CAROL
    assert [u.metric for u in triggered(routing)] == [246]
    assert routing.receive_update(BOB, destination=ERIN, seqno=1, metric=1, hops=1,
                                  now=2.0) == []  # no longer a neighbour: ignored


# --- seqno requests -----------------------------------------------------------------------------


def test_a_request_for_ourselves_bumps_our_seqno_once() -> None:
    routing = table(bob=(96, False), seqno=0xFFFF)
    assert routing.receive_seqno_request(BOB, destination=ALICE, seqno=0, hops=5, now=0.0) == []
    assert routing.seqno == 0
    assert triggered(routing) == [Update(ALICE, 0, 0, 0, 0, 0, 0)]
    routing.receive_seqno_request(BOB, destination=ALICE, seqno=0, hops=5, now=0.1)
    assert routing.seqno == 0  # already there: just advertised again
    assert routing.bump_seqno() == 1
    assert triggered(routing) == [Update(ALICE, 1, 0, 0, 1, 0, 0)]
    assert triggered(routing) == []


def test_our_own_seqno_coming_back_newer_moves_ours_past_it() -> None:
    routing = table(bob=(96, False), seqno=5)
    routing.receive_update(BOB, destination=ALICE, seqno=40, metric=96, hops=1, now=0.0)
    assert routing.seqno == 41
    assert triggered(routing)[0].seqno == 41
    assert routing.best(ALICE) is None


def test_a_request_is_answered_by_a_route_new_enough_or_forwarded_toward_the_source() -> None:
    routing = table(bob=(96, False), carol=(96, False), dave=(96, False))
    routing.receive_update(CAROL, destination=ERIN, seqno=7, metric=100, hops=1, now=0.0)
    routing.updates_to_send(0.0, full=False)
    assert routing.receive_seqno_request(BOB, destination=ERIN, seqno=7, hops=10, now=0.0) == []
    assert [u.destination for u in triggered(routing)] == [ERIN]  # answered by an update
    out = routing.receive_seqno_request(BOB, destination=ERIN, seqno=8, hops=10, now=0.0)
    assert out == [Outgoing(CAROL, SeqnoRequest(ERIN, 8, 9, False))]  # one hop closer
    assert routing.receive_seqno_request(DAVE, destination=ERIN, seqno=8, hops=10,
                                         now=0.5) == []  # duplicate held back
    assert routing.receive_seqno_request(DAVE, destination=ERIN, seqno=8, hops=10,
                                         now=2.5) != []
    assert routing.receive_seqno_request(BOB, destination=ERIN, seqno=9, hops=1,
                                         now=3.0) == []  # out of hops
    # Never back to where it came from; nowhere else to go: dropped.
    assert routing.receive_seqno_request(CAROL, destination=ERIN, seqno=10, hops=10,
                                         now=4.0) == []


def test_seqno_request_flow_end_to_end_unsticks_a_starving_station() -> None:
    mesh = _mesh("a-b b-c c-d a-e e-d", costs={("a", "b"): 100, ("b", "c"): 100,
                                                ("c", "d"): 100, ("a", "e"): 500,
                                                ("e", "d"): 500})
    mesh.run_until(5.0)
    assert mesh.converged()
    seqno_before = mesh.tables["d"].seqno
    mesh.fail("c", "d")
    mesh.run_until(10.0)
    assert mesh.converged()
    assert mesh.tables["a"].next_hop("d") == "e"
    assert seqno_newer(mesh.tables["d"].seqno, seqno_before)  # a request reached d
    assert mesh.loops == []


# --- hop limit and the LAN-only view -------------------------------------------------------------


def test_routes_longer_than_the_hop_limit_are_not_selected() -> None:
    routing = RoutingTable(ALICE, hop_limit=3)
    routing.add_neighbour(BOB, cost=96, rf=False, now=0.0)
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=3, now=0.0)
    assert routing.best(DAVE) is None
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=100, hops=2, now=1.0)
    route = routing.best(DAVE)
    assert route is not None and route.hops == 3


def test_a_line_longer_than_the_hop_limit_ends_at_the_limit() -> None:
    names = [f"s{i:02d}" for i in range(14)]
    spec = " ".join(f"{a}-{b}" for a, b in itertools.pairwise(names))
    mesh = _mesh(spec)
    mesh.run_until(10.0)
    first = mesh.tables[names[0]]
    assert first.best(names[10]) is not None and first.best(names[10]).hops == 10
    assert first.best(names[11]) is None
    assert mesh.mismatches() == 0


def test_the_lan_only_view_never_uses_an_rf_link() -> None:
    routing = table(bob=(500, True), carol=(96, False))
    routing.receive_update(BOB, destination=DAVE, seqno=1, metric=10, hops=1, now=0.0)
    assert routing.next_hop(DAVE) == BOB
    assert routing.best_lan_only(DAVE) is None
    # Carol's own best path to Dave goes on the air (metric 100), her LAN-only one costs 900.
    routing.receive_update(CAROL, destination=DAVE, seqno=1, metric=100, hops=1,
                                 now=1.0, lan_seqno=1, lan_metric=900, lan_hops=4)
    route, lan = routing.best(DAVE), routing.best_lan_only(DAVE)
    assert route is not None and (route.next_hop, route.metric) == (CAROL, 196)
    assert lan is not None and (lan.next_hop, lan.metric, lan.hops) == (CAROL, 996, 5)
    [update] = triggered(routing)
    assert (update.metric, update.lan_metric, update.lan_hops) == (196, 996, 5)
    # An RF neighbour's LAN triple is ignored: its link is on the air anyway.
    routing.receive_update(BOB, destination=ERIN, seqno=1, metric=10, hops=1, now=2.0,
                           lan_seqno=1, lan_metric=10, lan_hops=1)
    assert routing.best(ERIN) is not None and routing.best_lan_only(ERIN) is None
    assert routing.routes(lan_only=True)[0].destination == DAVE
    # Seqno requests about the LAN view never go to, or come from, an RF neighbour.
    assert routing.receive_seqno_request(BOB, destination=DAVE, seqno=9, hops=5, now=3.0,
                                         lan_only=True) == []


def test_lan_only_view_over_a_mesh_avoids_the_air_and_stays_loop_free() -> None:
    # a-b is RF and cheap; a-c-d-b is LAN and dearer.
    mesh = _mesh("a-b a-c c-d d-b", costs={("a", "b"): 150, ("a", "c"): 200, ("c", "d"): 200,
                                           ("d", "b"): 200}, rf={("a", "b")})
    mesh.run_until(5.0)
    a = mesh.tables["a"]
    assert a.next_hop("b") == "b"
    lan = a.best_lan_only("b")
    assert lan is not None and (lan.next_hop, lan.metric, lan.hops) == ("c", 600, 3)
    assert mesh.converged() and mesh.loops == []


# --- wire encoding -----------------------------------------------------------------------------


def test_wire_encoding_round_trips_and_omits_an_equal_lan_triple() -> None:
    same = Update(DAVE, 3, 196, 2, 3, 196, 2)
    other = Update(ERIN, 4, 300, 3, 2, 900, 5)
    payload = updates_to_wire([same, other])
    assert payload["updates"] == [[DAVE, 3, 196, 2], [ERIN, 4, 300, 3, 2, 900, 5]]
    assert from_wire(payload) == [same, other]
    assert update_row(other, lan=False) == [ERIN, 4, 300, 3]
    request = SeqnoRequest(DAVE, 4, 9, lan_only=True)
    assert from_wire(to_wire(request)) == [request]
    assert from_wire(to_wire(same)) == [same]


@pytest.mark.parametrize("payload", [
    {"type": "nope"},
    {"type": "ROUTE_UPDATE", "updates": "x"},
    {"type": "ROUTE_UPDATE", "updates": [[DAVE, 1, 2]]},
    {"type": "ROUTE_UPDATE", "updates": [[DAVE, 1, 70000, 2]]},
    {"type": "ROUTE_UPDATE", "updates": [["", 1, 7, 2]]},
    {"type": "ROUTE_UPDATE", "updates": [[DAVE, True, 7, 2]]},
    {"type": "SEQNO_REQUEST", "destination": DAVE, "seqno": -1, "hops": 3},
    {"type": "SEQNO_REQUEST", "destination": DAVE, "seqno": 1, "hops": 3, "lan": "yes"},
    {"type": "SEQNO_REQUEST", "seqno": 1, "hops": 3},
])
def test_malformed_wire_messages_are_refused_with_a_reason(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        from_wire(payload)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        RoutingTable(ALICE, 70000)
    routing = table(bob=(96, False))
    with pytest.raises(ValueError, match="its own neighbour"):
        routing.add_neighbour(ALICE, cost=96, rf=False, now=0.0)
    with pytest.raises(ValueError, match="metric"):
        routing.receive_update(BOB, destination=DAVE, seqno=1, metric=-1, hops=1, now=0.0)
    with pytest.raises(KeyError, match="not a neighbour"):
        routing.set_neighbour_cost(CAROL, cost=96, now=0.0)


# --- simulated meshes: no loop at any step, shortest paths once quiet -----------------------------


def _mesh(spec: str, *, costs: dict[tuple[str, str], int] | None = None,
          rf: set[tuple[str, str]] = frozenset(), seed: int = 0,  # type: ignore[assignment]
          detect_delay: float = 0.5) -> Mesh:
    """A mesh from "a-b b-c ...": default cost 96, latency 5 ms."""
    costs = costs or {}
    links, names = [], []
    for pair in spec.split():
        a, b = pair.split("-")
        names += [n for n in (a, b) if n not in names]
        links.append(Link(a, b, costs.get((a, b), 96), 0.005, rf=(a, b) in rf))
    return Mesh(names, links, seed=seed, detect_delay=detect_delay)


@st.composite
def meshes_and_failures(draw: st.DrawFn) -> tuple[Mesh, list[tuple[str, str, bool, bool]]]:
    count = draw(st.integers(min_value=3, max_value=8))
    names = [f"n{i}" for i in range(count)]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=count - 1, unique=True))
    links = [Link(a, b, draw(st.integers(min_value=96, max_value=600)),
                  draw(st.sampled_from([0.001, 0.02, 0.2])), rf=draw(st.booleans()))
             for a, b in chosen]
    mesh = Mesh(names, links, seed=draw(st.integers(0, 1000)),
                interval=draw(st.sampled_from([4.0, 16.0])),
                detect_delay=draw(st.sampled_from([0.0, 0.5, 3.0])))
    events = draw(st.lists(st.tuples(st.sampled_from(chosen), st.booleans(), st.booleans()),
                           max_size=6)) if chosen else []
    return mesh, [(a, b, fail, detect) for (a, b), fail, detect in events]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meshes_and_failures())
def test_no_loop_at_any_step_and_shortest_paths_after_quiescence(
        case: tuple[Mesh, list[tuple[str, str, bool, bool]]]) -> None:
    mesh, events = case
    mesh.run_until(2.0)
    for a, b, fail, detect in events:
        if fail:
            mesh.fail(a, b, detect=detect)
        else:
            mesh.restore(a, b)
        mesh.run_until(mesh.now + random.Random(a + b).uniform(0.0, 3.0))
        assert mesh.loops == []  # checked after every delivery and neighbour event
    mesh.run_until(mesh.now + 6 * mesh.interval)  # undetected failures: routes expired
    assert mesh.loops == []
    assert mesh.mismatches() == 0
    assert mesh.mismatches(lan_only=True) == 0


def test_a_ring_recovers_over_the_other_side_and_back_without_loops() -> None:
    mesh = _mesh("a-b b-c c-d d-e e-f f-a", costs={("a", "b"): 100})
    mesh.run_until(3.0)
    assert mesh.tables["a"].next_hop("c") == "b"
    for step in range(3):
        mesh.fail("a", "b")
        mesh.run_until(mesh.now + 2.0)
        assert mesh.converged(), step
        assert mesh.tables["a"].next_hop("c") == "f"
        mesh.restore("a", "b")
        mesh.run_until(mesh.now + 2.0)
        assert mesh.converged(), step
        assert mesh.tables["a"].next_hop("c") == "b"
    assert mesh.loops == []


def test_a_station_that_disappears_is_retracted_everywhere_then_forgotten() -> None:
    mesh = _mesh("a-b b-c c-d d-a b-e")
    mesh.run_until(3.0)
    mesh.fail("b", "e")
    mesh.run_until(mesh.now + 2.0)
    assert all(table.best("e") is None for name, table in mesh.tables.items() if name != "e")
    assert mesh.loops == []
    mesh.run_until(mesh.now + 200.0)
    for name, table in mesh.tables.items():
        if name != "e":
            assert "e" not in {r.destination for r in table.routes(include_unreachable=True)}
