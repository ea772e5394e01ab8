"""Real mDNS between three stations in network namespaces on a private bridge: each sees the
others; a station whose link drops turns suspect then unreachable; back up, it is active."""

from __future__ import annotations

import json
import time

import pytest

from tests.mesh.netns import sees, state_of
from tests.mesh.stations import wait_for as wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]


def test_three_stations_find_each_other_and_notice_a_dropped_link(lan):
    stations = [lan.add_station(i) for i in range(3)]
    for station in stations:
        station.start()
    for station in stations:
        station.wait_ready(120)
    started = time.monotonic()
    for station in stations:
        others = [o for o in stations if o is not station]
        wait_until(lambda s=station, o=others: sees(s, o), 30, f"{station.host} sees the others")
    waited = time.monotonic() - started
    # From the later of the two meshd starts to the peer row (log and database times).
    latency = max(observer.seen_at(other) - max(other.logged_at("meshd starting"),
                                                observer.logged_at("meshd starting"))
                  for observer in stations for other in stations if other is not observer)
    print(f"\nmdns: every station recorded the other two at most {latency:.2f}s after both "
          f"meshd started ({waited:.2f}s wait after the last was ready)")

    servers = json.loads(stations[0].http("/api/local-servers"))["servers"]
    assert {s["endpoint"] for s in servers} == {stations[1].url, stations[2].url}
    peers = json.loads(stations[0].http("/api/peers"))
    assert {p["discoveryMethod"] for p in peers} == {"mdns"}
    assert all(p["stationId"] for p in peers)

    a, b, cut = stations
    lan.cut(cut)
    t0 = time.monotonic()
    suspect = wait_until(lambda: state_of(a, cut) == "suspect", 30, "cut station suspect")
    unreachable = wait_until(lambda: state_of(a, cut) == "unreachable", 60,
                             "cut station unreachable")
    wait_until(lambda: state_of(b, cut) == "unreachable", 30, "B sees it unreachable too")
    assert state_of(a, b) == "active"  # the others still see each other
    print(f"mdns: link down -> suspect {suspect:.2f}s, unreachable "
          f"{time.monotonic() - t0:.2f}s (A's view; unreachable wait {unreachable:.2f}s)")

    lan.mend(cut)
    back = wait_until(lambda: state_of(a, cut) == "active" and state_of(b, cut) == "active",
                      30, "cut station active again")
    print(f"mdns: link up -> active again {back:.2f}s")
    assert state_of(cut, a) == "active"

    # A clean stop says goodbye over mDNS: the others mark it unreachable at once, without
    # waiting for the silence timeouts.
    t0 = time.monotonic()
    cut.stop()
    stopped = time.monotonic() - t0
    goodbye = wait_until(lambda: state_of(a, cut) == "unreachable", 30, "goodbye seen")
    print(f"mdns: station stopped in {stopped:.2f}s; A had it unreachable "
          f"{stopped + goodbye:.2f}s after the stop began")
    assert "meshd stopping" in cut.output()
