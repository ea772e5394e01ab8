"""Content across real stations on loopback (separate processes, data dirs and Redis), linked
A-B and B-C by manual peers: replication by priority, serving from a peer, caching and LRU
eviction, and a conflict between two stations of one operator with skewed clocks."""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.stations import provision, wait_for

# The first test of the module also waits for the three stations of `trio` to start: on a busy
# 2-core machine (and on PostgreSQL) that alone has taken two minutes.
pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(600)]

FAST = {"MESHSITE_MESH_GOSSIP_INTERVAL": "5", "MESHSITE_CATALOG_SYNC_INTERVAL": "5",
        "MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off"}
B_BUDGET = 5000


def fetch(station: StationProcess, path: str, **headers: str) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(station.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def entry_at(station: StationProcess, origin: str, path: str) -> dict | None:
    status, data = station.get(f"/api/content-catalog?origin={origin}&pageSize=500")
    assert status == 200, data
    return next((row for row in data["entries"] if row["path"] == path), None)


def publish(station: StationProcess, tmp_path, path: str, body: bytes, priority: int) -> str:
    source = tmp_path / path.replace("/", "_")
    source.write_bytes(body)
    result = station.manage("publish", str(source), "--path", path, "--priority", str(priority))
    assert result.returncode == 0, result.stderr
    return result.stdout.split("entry ", 1)[1].split()[0]


def link(left: StationProcess, right: StationProcess) -> None:
    result = left.manage("meshpeer", "add", right.url)
    assert result.returncode == 0, result.stderr


def start_claimed(stations: list[tuple[StationProcess, pki.Identity, str]], root) -> None:
    """Provision (a few manage.py runs each) and start the stations side by side: one after
    another is minutes of waiting on a busy machine."""
    def one(spec: tuple[StationProcess, pki.Identity, str]) -> None:
        station, owner, callsign = spec
        provision(station, roots=[root], owner=owner, callsign=callsign)
        station.start()

    with ThreadPoolExecutor(len(stations)) as pool:
        list(pool.map(one, stations))


def linked(station: StationProcess, callsigns: set[str]) -> bool:
    _, peers = station.get("/api/peers")
    return {p["callsign"] for p in peers if p["authenticated"]} >= callsigns


@pytest.fixture(scope="module")
def pkis():
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True)
    return {"root": root, "DL1A": pki.issue(ca, callsign="DL1A"),
            "DL1B": pki.issue(ca, callsign="DL1B"), "DL1C": pki.issue(ca, callsign="DL1C"),
            "DL1D": pki.issue(ca, callsign="DL1D")}


@pytest.fixture(scope="module")
def trio(tmp_path_factory, pkis):
    stations: dict[str, StationProcess] = {}
    try:
        for name in ("A", "B", "C"):
            env = dict(FAST)
            if name == "B":
                env["MESHSITE_CATALOG_STORAGE_BUDGET"] = str(B_BUDGET)
            stations[name] = StationProcess(tmp_path_factory.mktemp(f"cat-{name}"), env=env)
        start_claimed([(station, pkis[f"DL1{name}"], f"DL1{name}")
                       for name, station in stations.items()], pkis["root"])
        a, b, c = stations["A"], stations["B"], stations["C"]
        link(a, b)
        link(b, c)
        wait_for(lambda: linked(b, {"DL1A", "DL1C"}) and linked(a, {"DL1B"})
                 and linked(c, {"DL1B"}), 90, "links A-B and B-C authenticated")
        yield stations
    finally:
        for station in stations.values():
            station.stop()


def test_essential_entry_reaches_every_station_with_its_body(trio, tmp_path):
    a, b, c = trio["A"], trio["B"], trio["C"]
    body = b"<h1>Shelter: Lincoln school gym, open 24h</h1>"
    entry_id = publish(a, tmp_path, "notices/shelter.html", body, 1)
    took = wait_for(lambda: (e := entry_at(c, "DL1A", "notices/shelter.html")) is not None
                    and e["hasBody"], 30, "priority 1 entry with its body at C")
    print(f"\npriority-1 entry A->C (2 hops) with body in {took:.2f}s")
    for station in (b, c):
        entry = entry_at(station, "DL1A", "notices/shelter.html")
        assert entry["entryId"] == entry_id and entry["hasBody"]
        status, served, headers = fetch(station, "/c/DL1A/notices/shelter.html")
        assert (status, served) == (200, body)
        assert headers["X-Meshsite-Entry"] == entry_id
    # ... and by the .radio host name at C.
    status, served, _ = fetch(c, "/notices/shelter.html", Host="dl1a.radio")
    assert (status, served) == (200, body)
    # Each station knows the holders it has heard of, by callsign: B fetched from A; C from B
    # over HTTP, or from A through B (forwarded) when B's gossip came before B held the body.
    _, detail = b.get(f"/api/content-catalog/{entry_id}")
    assert {r["callsign"] for r in detail["replicas"]} >= {"DL1A", "DL1B"}
    _, detail = c.get(f"/api/content-catalog/{entry_id}")
    holders = {r["callsign"] for r in detail["replicas"]}
    assert "DL1C" in holders and holders & {"DL1A", "DL1B"} and "" not in holders, holders


def test_personal_entry_stays_at_origin_yet_opens_from_b(trio, tmp_path):
    a, b = trio["A"], trio["B"]
    body = b"personal log of DL1A"
    publish(a, tmp_path, "log.txt", body, 4)
    wait_for(lambda: entry_at(b, "DL1A", "log.txt") is not None, 30, "metadata at B")
    assert not entry_at(b, "DL1A", "log.txt")["hasBody"]
    status, served, _ = fetch(b, "/c/DL1A/log.txt")
    assert (status, served) == (200, body)
    assert not entry_at(b, "DL1A", "log.txt")["hasBody"]  # served, not kept
    assert entry_at(a, "DL1A", "log.txt")["hasBody"]


def test_standard_entry_is_cached_on_access_then_evicted_lru(trio, tmp_path):
    a, b = trio["A"], trio["B"]
    first, second = b"1" * 3000, b"2" * 3000
    publish(a, tmp_path, "notices/evacuation.html", b"<p>Evacuation route: north</p>", 1)
    wait_for(lambda: (e := entry_at(b, "DL1A", "notices/evacuation.html")) is not None
             and e["hasBody"], 30, "priority 1 entry with its body at B")
    publish(a, tmp_path, "maps/first.bin", first, 3)
    publish(a, tmp_path, "maps/second.bin", second, 3)
    wait_for(lambda: entry_at(b, "DL1A", "maps/second.bin") is not None, 30, "metadata at B")
    assert not entry_at(b, "DL1A", "maps/first.bin")["hasBody"]
    assert fetch(b, "/c/DL1A/maps/first.bin")[:2] == (200, first)
    assert entry_at(b, "DL1A", "maps/first.bin")["hasBody"]  # cached on access
    # Opening the second passes B's budget: the least recently used cached body goes.
    assert fetch(b, "/c/DL1A/maps/second.bin")[:2] == (200, second)
    assert entry_at(b, "DL1A", "maps/second.bin")["hasBody"]
    assert not entry_at(b, "DL1A", "maps/first.bin")["hasBody"]
    # Essential content is never evicted.
    assert entry_at(b, "DL1A", "notices/evacuation.html")["hasBody"]
    # The evicted entry still opens (fetched again from A).
    assert fetch(b, "/c/DL1A/maps/first.bin")[:2] == (200, first)


def test_popular_entry_replicates_by_demand_seen_across_the_mesh(trio, tmp_path):
    """Priority 2: B keeps the body once it has been asked for it often enough (3 times);
    B's demand reaches C with the next sync, and C replicates it too, though nobody asked C."""
    a, b, c = trio["A"], trio["B"], trio["C"]
    body = b"frequencies: 146.52 simplex, 145.50 net"
    publish(a, tmp_path, "freqs.txt", body, 2)
    wait_for(lambda: entry_at(c, "DL1A", "freqs.txt") is not None, 30, "metadata at C")
    for attempt in range(3):
        assert not entry_at(b, "DL1A", "freqs.txt")["hasBody"], attempt
        assert fetch(b, "/c/DL1A/freqs.txt")[:2] == (200, body)
    assert entry_at(b, "DL1A", "freqs.txt")["hasBody"]
    assert not entry_at(c, "DL1A", "freqs.txt")["hasBody"]
    took = wait_for(lambda: entry_at(c, "DL1A", "freqs.txt")["hasBody"], 60,
                    "popular body replicated at C")
    print(f"\npriority-2 body replicated to C by mesh demand in {took:.2f}s")
    assert fetch(c, "/c/DL1A/freqs.txt", **{"X-Meshsite-No-Fetch": "1"})[:2] == (200, body)


def test_a_deletion_replicates_as_a_tombstone(trio, tmp_path):
    a, c = trio["A"], trio["C"]
    publish(a, tmp_path, "drill.html", b"drill at 19:00", 1)
    wait_for(lambda: fetch(c, "/c/DL1A/drill.html")[0] == 200, 30, "entry opens at C")
    result = a.manage("publish", "--delete", "--path", "drill.html")
    assert result.returncode == 0, result.stderr
    took = wait_for(lambda: entry_at(c, "DL1A", "drill.html") is None, 30, "tombstone at C")
    print(f"\ntombstone A->C in {took:.2f}s")
    status, body, _ = fetch(c, "/c/DL1A/drill.html", Accept="application/json")
    assert status == 404 and b"deleted" in body


def test_missing_everywhere_lists_what_the_mesh_holds(trio, tmp_path):
    a, c = trio["A"], trio["C"]
    publish(a, tmp_path, "notices/water.html", b"<p>Water at the fire station</p>", 1)
    wait_for(lambda: entry_at(c, "DL1A", "notices/water.html") is not None, 30, "entry at C")
    status, body, _ = fetch(c, "/c/DL1A/no-such-page.html", Accept="application/json")
    assert status == 404
    assert b"notices/water.html" in body


def test_partitioned_publishes_of_one_operator_converge(trio, pkis, tmp_path_factory,
                                                        tmp_path):
    """DL1D runs two stations. Unlinked, both publish status.html; E's clock runs three
    minutes fast, so E's version carries the later timestamp although D published last.
    Linked to the mesh, every station picks E's version and D's stays reachable."""
    d = StationProcess(tmp_path_factory.mktemp("cat-D"), env=FAST)
    e = StationProcess(tmp_path_factory.mktemp("cat-E"),
                       env={**FAST, "MESHSITE_CATALOG_CLOCK_OFFSET_MS": str(180_000)})
    try:
        start_claimed([(d, pkis["DL1D"], "DL1D"), (e, pkis["DL1D"], "DL1D")], pkis["root"])
        from_e = publish(e, tmp_path, "status.html", b"E: net open on 146.52", 1)
        from_d = publish(d, tmp_path, "status.html", b"D: net open on 145.50", 1)
        link(d, trio["B"])
        link(e, trio["C"])
        everyone = [trio["A"], trio["B"], trio["C"], d, e]

        def agreed() -> bool:
            for station in everyone:
                current = entry_at(station, "DL1D", "status.html")
                if current is None or current["entryId"] != from_e or not current["conflict"]:
                    return False
            return True

        took = wait_for(agreed, 60, "every station picks E's version")
        print(f"\nconflict resolved on 5 stations in {took:.2f}s")

        def bodies_everywhere() -> bool:
            # Priority 1: the bodies follow the entries hop by hop (each station fetches from
            # its linked neighbours), so they may arrive a little after the metadata.
            return all(fetch(station, "/c/DL1D/status.html")[0] == 200 for station in everyone)

        wait_for(bodies_everywhere, 60, "E's body served by every station")
        for station in everyone:
            status, body, headers = fetch(station, "/c/DL1D/status.html")
            assert (status, body) == (200, b"E: net open on 146.52")
            assert headers.get("X-Meshsite-Conflict") == "1"
            status, body, _ = fetch(station, f"/c/DL1D/status.html?version={from_d}")
            assert (status, body) == (200, b"D: net open on 145.50")
        _, conflicts = trio["A"].get("/api/content-catalog?conflicts=1&versions=1")
        assert {row["entryId"] for row in conflicts["entries"]} == {from_d, from_e}
    finally:
        d.stop()
        e.stop()
