"""Routing benchmark: `.venv/bin/python -m bench.routing [--stations 50 200] [--seed N]`.

Figures (printed; a benchmark, not a test):

- decision: the time of `best()` and `next_hop()` in a table of 100 and 1,000 stations learnt
  from 8 neighbours (target: a decision under 1 ms at 1,000), and of a full table update: one
  neighbour's whole dump received (`receive_update` per destination), our own dump built
  (`updates_to_send(full=True)`), and its JSON encoding and decoding.
- simulation (`bench.routing.sim`): the real tables over virtual links, random geometric meshes
  of 50 and 200 stations (about 8 links each, 10 % of links RF). Steady-state routing bytes per
  station per second (JSON payloads, and with the signed envelope each message travels in);
  convergence after link failures noticed by the daemon (1 s) and after recoveries, in update
  intervals (16 s; target: within 3 at 200 stations); one failure nobody notices (routes must
  expire); routing loops seen after every delivery in either view (target 0).

The default run stays under 3 minutes on one core; --failures trades time for samples.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable

from bench.routing.sim import Mesh, random_geometric
from mesh.distance_vector import (
    DEFAULT_INTERVAL,
    RoutingTable,
    from_wire,
    updates_to_wire,
)
from mesh.link_cost import LAN_BASE
from mesh.protocol import build_envelope

TARGET_DECISION_S = 0.001
TARGET_CONVERGENCE_INTERVALS = 3.0
BABEL_BYTES_PER_NODE_PER_DESTINATION = (2.0, 3.0)


def per_call(function: Callable[[], object], *, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def decision_figures(count: int, seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(count)]
    me, neighbours, destinations = ids[0], ids[1:9], ids[1:]
    table = RoutingTable(me, 1)
    for neighbour in neighbours:
        table.add_neighbour(neighbour, cost=LAN_BASE + rng.randrange(50), rf=False, now=0.0)
    for neighbour in neighbours:
        for destination in destinations:
            if destination != neighbour:
                table.receive_update(neighbour, destination=destination, seqno=7,
                                     metric=rng.randrange(96, 2000), hops=rng.randrange(1, 9),
                                     now=0.0)
    table.updates_to_send(0.0, full=True)
    lookups = [rng.choice(destinations) for _ in range(1000)]
    best = per_call(lambda: [table.best(d) for d in lookups], repeat=20) / len(lookups)
    hop = per_call(lambda: [table.next_hop(d) for d in lookups], repeat=20) / len(lookups)
    print(f"  {count:>5} stations: best() {best * 1e6:.2f} us, next_hop() {hop * 1e6:.2f} us"
          f"  [target < {TARGET_DECISION_S * 1e3:.0f} ms: "
          f"{'met' if best < TARGET_DECISION_S else 'MISSED'}]")

    sender = neighbours[0]
    dump_tables = [RoutingTable(sender, 1)]
    dump_tables[0].add_neighbour(me, cost=LAN_BASE, rf=False, now=0.0)
    metrics = {d: rng.randrange(96, 2000) for d in destinations}
    state = {"seqno": 8, "now": 1.0}

    def receive_dump() -> None:  # a changed dump each time: every entry re-selected
        state["seqno"] += 1
        state["now"] += 1.0
        for destination in destinations:
            if destination != sender:
                table.receive_update(sender, destination=destination, seqno=state["seqno"],
                                     metric=metrics[destination], hops=3, now=state["now"])

    def receive_same_dump() -> None:  # the periodic repeat: nothing changed
        for destination in destinations:
            if destination != sender:
                table.receive_update(sender, destination=destination, seqno=state["seqno"],
                                     metric=metrics[destination], hops=3, now=state["now"])

    changed = per_call(receive_dump, repeat=5)
    same = per_call(receive_same_dump, repeat=5)
    build = per_call(lambda: table.updates_to_send(state["now"], full=True), repeat=5)
    dump = table.updates_to_send(state["now"], full=True)
    payload = updates_to_wire(dump)
    text = json.dumps(payload, separators=(",", ":"))
    encode = per_call(lambda: json.dumps(updates_to_wire(dump), separators=(",", ":")),
                      repeat=5)
    decode = per_call(lambda: from_wire(json.loads(text)), repeat=5)
    print(f"  {count:>5} stations: full table update received {changed * 1e3:.1f} ms "
          f"(changed) / {same * 1e3:.1f} ms (periodic repeat); own dump built "
          f"{build * 1e3:.1f} ms; JSON encode {encode * 1e3:.1f} ms, decode "
          f"{decode * 1e3:.1f} ms; {len(text)} bytes ({len(text) / len(dump):.0f} per entry)")


def envelope_overhead() -> int:
    """Bytes a signed mesh envelope adds around a payload (see mesh.protocol)."""
    envelope = build_envelope(type_="ROUTE_UPDATE", sender="0" * 32, payload={},
                              sign=lambda _: bytes(64), ttl=1)
    return len(json.dumps(envelope, separators=(",", ":"))) - len("{}")


def until_converged(mesh: Mesh, start: float, limit: float, step: float = 0.25) -> float | None:
    while not mesh.converged():
        if mesh.now - start > limit:
            return None
        mesh.run_until(mesh.now + step)
    return mesh.now - start


def simulation_figures(count: int, seed: int, failures: int, silent: bool) -> dict[str, float]:
    started = time.perf_counter()
    stations, links = random_geometric(count, seed=seed)
    mesh = Mesh(stations, links, seed=seed)
    degree = 2 * len(links) / count
    rf = sum(link.rf for link in links)
    print(f"  {count} stations, {len(links)} links (mean degree {degree:.1f}, {rf} RF), "
          f"longest shortest path {mesh.max_hops()} hops (pairs beyond 10 not checked)")
    interval = DEFAULT_INTERVAL
    first = until_converged(mesh, 0.0, 10 * interval)
    print(f"  cold start (all links up at t=0): converged after "
          f"{'never' if first is None else f'{first:.2f} s'}")

    mesh.run_until(mesh.now + 2 * interval)  # past the first periodic round
    mesh.counters.reset()
    window = 3 * interval
    mesh.run_until(mesh.now + window)
    payload = sum(mesh.counters.bytes.values())
    per_station = payload / count / window
    per_destination = per_station / count
    per_link_destination = per_station / degree / count
    with_envelope = (payload + mesh.counters.messages * envelope_overhead()) / count / window
    low, high = BABEL_BYTES_PER_NODE_PER_DESTINATION
    print(f"  steady state: {per_station:.0f} B/s per station of JSON payload "
          f"({per_destination:.2f} B/s per destination, {per_link_destination:.2f} per link "
          f"and destination); with the signed envelope {with_envelope:.0f} B/s "
          f"({with_envelope / count:.2f} per destination); Babel: {low:.0f}-{high:.0f} B/s per "
          f"node per destination")

    rng = random.Random(seed + 1)
    down, up = [], []
    for _ in range(failures):
        link = rng.choice([link for link in links if link.up])
        start = mesh.now
        mesh.fail(link.a, link.b)
        taken = until_converged(mesh, start, 10 * interval)
        down.append(math.inf if taken is None else taken)
        mesh.run_until(mesh.now + 5.0)
        start = mesh.now
        mesh.restore(link.a, link.b)
        taken = until_converged(mesh, start, 10 * interval)
        up.append(math.inf if taken is None else taken)
        mesh.run_until(mesh.now + 5.0)
    figures = {"fail_max": max(down) / interval, "restore_max": max(up) / interval}
    print(f"  {failures} link failures (noticed after {mesh.detect_delay:.0f} s): converged in "
          f"median {statistics.median(down):.2f} s, max {max(down):.2f} s = "
          f"{figures['fail_max']:.2f} intervals  [target <= {TARGET_CONVERGENCE_INTERVALS:.0f}: "
          f"{'met' if figures['fail_max'] <= TARGET_CONVERGENCE_INTERVALS else 'MISSED'}]")
    print(f"  {failures} recoveries: converged in median {statistics.median(up):.2f} s, max "
          f"{max(up):.2f} s = {figures['restore_max']:.2f} intervals")
    if silent:
        link = rng.choice([link for link in links if link.up])
        start = mesh.now
        mesh.fail(link.a, link.b, detect=False)
        taken = until_converged(mesh, start, 10 * interval, step=1.0)
        print("  1 failure nobody notices (routes expire after 3.5 intervals): converged in "
              + ("never" if taken is None else f"{taken:.1f} s = {taken / interval:.2f} "
                                                 "intervals"))
    loops = len(mesh.loops)
    print(f"  routing loops seen (both views, after every delivery, whole run): {loops}  "
          f"[target 0: {'met' if loops == 0 else 'MISSED'}]")
    print(f"  ({time.perf_counter() - started:.1f} s of real time)")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, nargs="+", default=[50, 200],
                        help="mesh sizes to simulate (default: 50 200)")
    parser.add_argument("--table-sizes", type=int, nargs="+", default=[100, 1000],
                        help="table sizes for the decision timings (default: 100 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failures", type=int, default=5,
                        help="link failures (and recoveries) per mesh (default: 5)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("routing decision and full table update (one core):")
    for count in args.table_sizes:
        decision_figures(count, args.seed)
    missed = False
    for count in args.stations:
        print(f"simulation, {count} stations, update interval {DEFAULT_INTERVAL:.0f} s, "
              f"seed {args.seed}:")
        figures = simulation_figures(count, args.seed, args.failures, silent=count <= 50)
        missed |= count >= 200 and figures["fail_max"] > TARGET_CONVERGENCE_INTERVALS
    print(f"total {time.perf_counter() - started:.1f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
