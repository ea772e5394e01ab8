"""Three claimed stations and an unclaimed one on the simulated 1200 bit/s channel with 10 %
frame loss, no LAN between them: the claimed ones learn each other's credentials over the air,
become routing neighbours over RF (routes with rf next hops, at the RF cost), reconcile their
catalogs over RF (an entry published at one is listed at the others) and fetch a body over RF
through forwarding; once two of them get a LAN link, the LAN is preferred (route and body);
mailbox traffic is refused rather than sent on the air, and nothing on the channel was mail;
the air time of everything but client requests stays within the share, no
station goes longer than the ID interval without identifying, and the unclaimed station never
transmits."""

from __future__ import annotations

import itertools
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.rf.channel import SimulatedChannel
from mesh.ax25 import Frame
from mesh.link_cost import rf_base
from tests.catalog.test_replication import entry_at, publish
from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.rf_air import assert_no_mail, by_type, mailbox_attempt, messages_on_air
from tests.mesh.stations import provision, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.air]

# Two minutes between IDs and half the air for background traffic (each station gets at most
# a fifth with two others heard: `rf_link.share_for`): with the defaults (600 s, 10 %) the
# same exchange takes tens of minutes at 1200 bit/s; the rules checked are the same.
ID_INTERVAL = 120
CALLS = ("DL1RR", "DL2RR", "DL3RR")
SHARE = 0.5


def _request_frames(station: StationProcess) -> int:
    airtime = station.get("/api/status")[1]["rf"]["airtime"]
    return airtime.get("request", {}).get("frames", 0) + airtime.get("repeat", {}).get(
        "frames", 0)


def _routes(station: StationProcess) -> dict[str, dict]:
    status, data = station.get("/api/routes")
    assert status == 200, data
    return {row["callsign"]: row for row in data["routes"]}


def _rf_mesh_complete(stations: list[StationProcess]) -> bool:
    """Every claimed station holds the other two's credentials (RF neighbours) and a route
    to each."""
    for station, call in zip(stations, CALLS, strict=True):
        others = set(CALLS) - {call}
        neighbours = station.get("/api/status")[1]["rf"].get("neighbours") or []
        if not others <= set(neighbours) or not others <= set(_routes(station)):
            return False
    return True


@pytest.mark.timeout(2100)
def test_three_stations_route_sync_and_fetch_over_the_air(tmp_path) -> None:
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    owners = [pki.issue(ca, callsign=call) for call in CALLS]
    with SimulatedChannel(bitrate=1200, loss=0.1, seed=23, lifetime=2050) as channel:
        env = {"MESHSITE_RF_KISS": f"tcp://127.0.0.1:{channel.port}",
               "MESHSITE_RF_ID_INTERVAL": str(ID_INTERVAL),
               "MESHSITE_RF_AIRTIME_SHARE": str(SHARE),
               "MESHSITE_RF_ROUTE_INTERVAL": "120", "MESHSITE_RF_SYNC_INTERVAL": "20"}
        stations = [StationProcess(tmp_path / f"rr{index}", env=env) for index in range(4)]
        specs = [*zip(stations[:3], owners, CALLS, strict=True), (stations[3], None, "")]
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda s: provision(s[0], roots=[root], owner=s[1],
                                                  callsign=s[2]), specs))
                list(pool.map(lambda station: station.start(timeout=240), stations))
            claimed, silent = stations[:3], stations[3]
            took = wait_for(lambda: _rf_mesh_complete(claimed), 420,
                            "every claimed station is an RF neighbour of the other two, with "
                            "a route to each",
                            interval=1)
            print(f"\nneighbours and routes over RF after {took:.0f} s")
            first = _routes(claimed[0])
            for call in CALLS[1:]:
                assert first[call]["cost"] >= rf_base(1200), first[call]
                assert first[call]["nextHopCallsign"] in CALLS[1:]
            _, peers = claimed[0].get("/api/peers")
            rf_peers = {p["callsign"]: p for p in peers if p["discoveryMethod"] == "rf"}
            assert {"DL2RR", "DL3RR"} <= set(rf_peers)
            assert all(rf_peers[c]["authenticated"] for c in ("DL2RR", "DL3RR"))
            status = claimed[0].get("/api/status")[1]["rf"]
            assert set(status["neighbours"]) == {"DL2RR", "DL3RR"}, status
            # Catalog sync over RF: published at the first, listed at the third.
            body = b"<h1>Shelter at the school gym</h1>" + bytes(range(256)) * 8
            publish(claimed[0], tmp_path, "shelter.html", body, 3)
            took = wait_for(lambda: entry_at(claimed[2], CALLS[0], "shelter.html") is not None,
                            720, "the entry published at DL1RR is listed at DL3RR", interval=1)
            print(f"catalog entry crossed the air in {took:.0f} s")
            # A client at the third asks for the body: forwarded over RF, chunk by chunk.
            request = urllib.request.Request(claimed[2].url + f"/c/{CALLS[0]}/shelter.html")
            with urllib.request.urlopen(request, timeout=600) as response:
                assert response.status == 200
                assert response.read() == body
            # LAN preferred over RF: DL2RR gets a LAN link to DL3RR, which now holds the body
            # too (cached when its client asked); DL1RR, the origin, is an RF neighbour of
            # DL2RR. The route to DL3RR goes over the LAN and the body comes over it: neither
            # DL2RR nor DL1RR sends a single request frame on the air for it.
            result = claimed[1].manage("meshpeer", "add", claimed[2].url)
            assert result.returncode == 0, result.stderr
            wait_for(lambda: _routes(claimed[1]).get(CALLS[2], {}).get("cost", 1e9)
                     < rf_base(1200), 60, "DL2RR routes to DL3RR over the LAN link")
            before = {call: _request_frames(station) for call, station in
                      zip(CALLS[:2], claimed[:2], strict=True)}
            request = urllib.request.Request(claimed[1].url + f"/c/{CALLS[0]}/shelter.html")
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.read() == body
            assert {call: _request_frames(station) for call, station in
                    zip(CALLS[:2], claimed[:2], strict=True)} == before
            # Mailbox traffic never goes on the air (issue 14): DL3RR's only route to DL1RR
            # has an RF hop, so a bundle request for an operator homed there is refused.
            home = _routes(claimed[2])[CALLS[0]]["destination"]
            refused = mailbox_attempt(claimed[2], home, CALLS[0])
            assert refused.splitlines()[0] == "no_lan_route", refused
            assert "never goes on the air" in refused, refused
            assert silent.get("/api/status")[1]["rf"]["source"] is None
            ledgers = {call: station.get("/api/status")[1]["rf"]["airtime"]
                       for call, station in zip(CALLS, claimed, strict=True)}
            elapsed = channel.now()
            print(f"air time by kind after {elapsed:.0f} s: {ledgers}")
            assert ledgers[CALLS[0]]["request"]["frames"] > 0  # DL1RR served the body
            assert any(ledger.get("sync", {}).get("frames") for ledger in ledgers.values())
        finally:
            for station in stations:
                station.stop()
        transmissions = channel.snapshot()
    on_air = [(tx.client, end, Frame.decode(raw)) for tx in transmissions
              for raw, end in zip(tx.frames, tx.frame_ends, strict=True)]
    sources = {str(frame.source) for _, _, frame in on_air}
    assert sources == {f"{call}-10" for call in CALLS}
    assert len({client for client, _, _ in on_air}) == 3  # four connected, three transmitted
    for source in sources:
        ids = [end for _, end, frame in on_air
               if str(frame.source) == source and str(frame.destination) == "ID"]
        gaps = [b - a for a, b in itertools.pairwise(ids)]
        assert max(gaps) <= ID_INTERVAL, (source, gaps)
    messages = messages_on_air(transmissions)
    print(f"messages on the air by type: {by_type(messages)}")
    types = {message.get("type") for message in messages}
    assert {"RF_CREDENTIAL", "ROUTE_UPDATE", "CONTENT_SYNC", "FORWARD"} <= types, types
    assert_no_mail(messages)
    # Beacons, IDs, credentials, routing, sync and NACKs draw on the share (what the client
    # asked for, FORWARD and its chunks, goes first and is not charged): the bucket lends a
    # minute's worth and one message may start while it is not in debt.
    for call, ledger in ledgers.items():
        background = sum(item["seconds"] for kind, item in ledger.items()
                         if kind not in ("request", "repeat"))
        assert background <= SHARE * 60 + 30 + SHARE * elapsed, (call, ledger, elapsed)
