"""Two claimed stations, each in its own network namespace with its own real TNC (Direwolf),
and no IP path between the namespaces: the only way from one to the other is the "radio" (the
TNCs' audio, piped across). Each station becomes an `rf` peer of the other from its ID beacons,
they exchange credentials and become mesh neighbours over the air, an essential page published
at one is replicated over RF and served by the other, and every frame a Direwolf decodes off
the air has the sending station's callsign and SSID as its source."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.certificates import pki
from tests.environment import requirement_missing
from tests.mesh.direwolf import KISS_PORT, DirewolfPair, direwolf_available
from tests.mesh.netns import NetnsStation, netns_available
from tests.mesh.stations import provision, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.netns, pytest.mark.air]


PAGE = b"<h1>Net control: DL1DW on 145.500</h1>" + b"<p>Check-ins every hour.</p>" * 20


def _served(station: NetnsStation, path: str) -> bytes | None:
    """The body `station` serves at `path` (from inside its namespace), or None."""
    code = ("import sys, urllib.request\n"
            "try:\n"
            "    sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=10).read())\n"
            "except Exception as exc:\n"
            "    sys.exit(str(exc))\n")
    result = subprocess.run(["ip", "netns", "exec", station.ns, sys.executable, "-c", code,
                             f"{station.url}{path}"], capture_output=True, timeout=60,
                            check=False)
    return result.stdout if result.returncode == 0 else None


def _rf_peer(station: NetnsStation, callsign: str) -> dict | None:
    return next((p for p in station.peers() if p["callsign"] == callsign
                 and p["discovery_method"] == "rf"), None)


@pytest.mark.timeout(1500)
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
                "MESHSITE_RF_ID_INTERVAL": "60", "MESHSITE_RF_AIRTIME_SHARE": "0.25",
                "MESHSITE_RF_SYNC_INTERVAL": "20", "MESHSITE_RF_ROUTE_INTERVAL": "60"}))
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
        # Credentials over the air, then the page: published (essential: every station keeps
        # it) at the first, reconciled and replicated over RF, served by the second.
        wait_for(lambda: (_rf_peer(one, "DL2DW") or {}).get("authenticated")
                 and (_rf_peer(two, "DL1DW") or {}).get("authenticated"), 600,
                 "each station verified the other's credential")
        source = tmp_path / "net.html"
        source.write_bytes(PAGE)
        result = one.manage("publish", str(source), "--path", "net.html", "--priority", "1")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: two.query("SELECT 1 FROM catalog_contententry WHERE path = ? AND "
                                   "has_body", "net.html"), 720,
                 "DL2DW holds the body of the essential page (replicated over RF)", interval=2)
        assert _served(two, "/c/DL1DW/net.html") == PAGE
        heard_by_first, heard_by_second = pair.decoded(0), pair.decoded(1)
        assert heard_by_first and heard_by_second
        assert set(heard_by_first) == {"DL2DW-10"}, heard_by_first
        assert set(heard_by_second) == {"DL1DW-10"}, heard_by_second
        assert '"source": "DL1DW-10"' in one.http("/api/status").replace('":"', '": "')
    finally:
        for station in stations:
            station.stop()
        pair.close()
