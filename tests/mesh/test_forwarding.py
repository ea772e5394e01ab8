"""Multi-hop forwarding on loopback: four stations in a line A-B-C-D, each adding only its
right-hand neighbour and dialling no station it merely heard of, so D reaches A only through
the mesh: routes show A three hops away, A's personal page opens at D byte for byte, and no
station but A keeps it."""

from __future__ import annotations

import itertools

import pytest

from tests.catalog.test_replication import entry_at, fetch, publish
from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.stations import wait_for
from tests.mesh.test_link_both_ends import _bring_up

pytestmark = pytest.mark.integration

LINE = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
        "MESHSITE_MESH_ROUTE_INTERVAL": "4"}
CALLS = [f"DL{i}FW" for i in range(1, 5)]


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    owners = [pki.issue(ca, callsign=call) for call in CALLS]
    stations = [StationProcess(tmp_path_factory.mktemp(f"fw-{i}"), env=LINE)
                for i in range(len(owners))]
    try:
        _bring_up(stations, root, owners)
        for left, right in itertools.pairwise(stations):
            result = left.manage("meshpeer", "add", left_url(right))
            assert result.returncode == 0, result.stderr
        yield stations
    finally:
        for station in stations:
            station.stop()


def left_url(station: StationProcess) -> str:
    return station.url


def route(station: StationProcess, callsign: str) -> dict | None:
    status, data = station.get("/api/routes")
    assert status == 200, data
    return next((r for r in data["routes"] if r["callsign"] == callsign), None)


@pytest.mark.timeout(600)
def test_personal_page_opens_three_hops_away_and_no_relay_keeps_it(line, tmp_path):
    a, b, c, d = line
    took = wait_for(lambda: (route(d, CALLS[0]) or {}).get("hops") == 3, 120,
                    "D has a three-hop route to A")
    first = route(d, CALLS[0])
    print(f"\nroute D->A after {took:.1f}s: {first}")
    assert first["nextHopCallsign"] == CALLS[2]
    body = bytes(range(256)) * 400 + b"personal notes"  # ~100 KB: several chunks
    publish(a, tmp_path, "notes.bin", body, 4)
    wait_for(lambda: entry_at(d, CALLS[0], "notes.bin") is not None, 60, "metadata at D")
    status, got, headers = fetch(d, f"/c/{CALLS[0]}/notes.bin")
    assert status == 200, got[:500]
    assert got == body
    for station in (b, c, d):
        assert not entry_at(station, CALLS[0], "notes.bin")["hasBody"]
    assert entry_at(a, CALLS[0], "notes.bin")["hasBody"]
    # ETag and Range behave as for a local body.
    status, part, headers = fetch(d, f"/c/{CALLS[0]}/notes.bin", Range="bytes=10-19")
    assert status == 206 and part == body[10:20]
