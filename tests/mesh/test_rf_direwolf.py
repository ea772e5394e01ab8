"""Two claimed stations, each in its own network namespace with its own real TNC (Direwolf),
and no IP path between the namespaces: the only way from one to the other is the "radio" (the
TNCs' audio, piped across). Each station becomes an `rf` peer of the other from its ID beacons,
and every frame a Direwolf decodes off the air has the sending station's callsign and SSID as
its source."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.certificates import pki
from tests.environment import requirement_missing
from tests.mesh.direwolf import KISS_PORT, DirewolfPair, direwolf_available
from tests.mesh.netns import NetnsStation, netns_available
from tests.mesh.stations import provision, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.netns]


def _rf_peer(station: NetnsStation, callsign: str) -> dict | None:
    return next((p for p in station.peers() if p["callsign"] == callsign
                 and p["discovery_method"] == "rf"), None)


@pytest.mark.timeout(600)
def test_two_stations_meet_over_real_tncs_with_no_ip_path(tmp_path: Path) -> None:
    if not netns_available():
        requirement_missing("needs root and `ip netns` (network namespaces)")
    if not direwolf_available():
        requirement_missing("needs Debian's `direwolf` package (scripts/bootstrap installs it)")
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    calls = ("DL1DW", "DL2DW")
    owners = [pki.issue(ca, callsign=call) for call in calls]
    pair = DirewolfPair(tmp_path / "tnc", calls)
    stations: list[NetnsStation] = []
    try:
        pair.start()
        for index, ns in enumerate(pair.namespaces):
            # Only loopback in each namespace: the stations share no network at all.
            links = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True,
                                   text=True, check=True).stdout
            assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
            stations.append(NetnsStation(ns, "127.0.0.1", tmp_path / f"station{index}", env={
                "MESHSITE_MDNS": "off", "MESHSITE_RF_KISS": f"tcp://127.0.0.1:{KISS_PORT}",
                "MESHSITE_RF_ID_INTERVAL": "30"}))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: provision(stations[i], roots=[root], owner=owners[i],
                                              callsign=calls[i]), range(2)))
        for station in stations:
            station.start()
        one, two = stations
        wait_for(lambda: _rf_peer(one, "DL2DW") and _rf_peer(two, "DL1DW"), 300,
                 "each station is an rf peer of the other")
        wait_for(lambda: (_rf_peer(one, "DL2DW") or {}).get("state") == "active"
                 and (_rf_peer(two, "DL1DW") or {}).get("state") == "active", 60,
                 "both rf peers active")
        heard_by_first, heard_by_second = pair.decoded(0), pair.decoded(1)
        assert heard_by_first and heard_by_second
        assert set(heard_by_first) == {"DL2DW-10"}, heard_by_first
        assert set(heard_by_second) == {"DL1DW-10"}, heard_by_second
        assert '"source": "DL1DW-10"' in one.http("/api/status").replace('":"', '": "')
    finally:
        for station in stations:
            station.stop()
        pair.close()
