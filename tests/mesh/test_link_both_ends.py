"""A link is a whole link whichever side dialled it: five stations in a line, each adding only
its right-hand neighbour, all bound to every address (so none announces an endpoint of its
own): every station shows both its neighbours active and linked, with the endpoint the dialler
stated in its handshake and the accepting side checked by connecting back. A station whose
stated endpoint does not answer (behind NAT) stays active while its link is up."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.certificates import pki
from tests.harness import StationProcess, free_port
from tests.mesh.stations import provision, wait_for

pytestmark = pytest.mark.integration

LINE = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off"}


@pytest.fixture(scope="module")
def operators():
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    return root, [pki.issue(ca, callsign=f"DL{i}LN") for i in range(1, 6)]


def _loopback_url(station: StationProcess) -> str:
    return f"http://127.0.0.1:{station.port}"


def _peer(station: StationProcess, callsign: str) -> dict | None:
    _, peers = station.get("/api/peers")
    return next((p for p in peers if p["callsign"] == callsign), None)


def _neighbour_ok(station: StationProcess, other: StationProcess, callsign: str) -> bool:
    peer = _peer(station, callsign)
    return bool(peer and peer["state"] == "active" and peer["authenticated"] and peer["linked"]
                and peer["endpoint"] == _loopback_url(other))


def _bring_up(stations: list[StationProcess], root: pki.Identity,
              owners: list[pki.Identity]) -> None:
    """Provision and start the stations side by side: one after another, five whole stations
    take minutes on a busy 2-core machine, mostly waiting."""
    with ThreadPoolExecutor(len(stations)) as pool:
        list(pool.map(lambda pair: provision(pair[0], roots=[root], owner=pair[1],
                                             callsign=pair[1].cert.subject.get_attributes_for_oid(
                                                 pki.LOTW_CALLSIGN_OID)[0].value),
                      zip(stations, owners, strict=True)))
        list(pool.map(lambda station: station.start(timeout=240), stations))


@pytest.mark.timeout(600)
def test_five_stations_in_a_line_see_both_neighbours_active(tmp_path_factory, operators):
    root, owners = operators
    stations = [StationProcess(tmp_path_factory.mktemp(f"line-{index}"), env=LINE,
                               host="0.0.0.0")  # noqa: S104 - inside the test namespace
                for index in range(len(owners))]
    try:
        _bring_up(stations, root, owners)
        for left, right in itertools.pairwise(stations):
            result = left.manage("meshpeer", "add", _loopback_url(right))
            assert result.returncode == 0, result.stderr
        calls = [f"DL{i}LN" for i in range(1, 6)]

        def all_neighbours() -> list[str]:
            missing = []
            for index, station in enumerate(stations):
                for other in (index - 1, index + 1):
                    if 0 <= other < len(stations) and not _neighbour_ok(
                            station, stations[other], calls[other]):
                        missing.append(f"{calls[index]} -> {calls[other]}")
            return missing

        took = wait_for(lambda: not all_neighbours(), 90, "every station sees both neighbours")
        print(f"\nline of five: every neighbour active and linked after {took:.2f}s")
        # The accepting side learnt the dialler's endpoint from its handshake only.
        middle = _peer(stations[2], calls[1])
        assert middle["discoveryMethod"] == "peer"
        # Each pair has one link: the accepting side did not dial back.
        assert "mesh link up\" role=client" not in stations[4].output()
    finally:
        for station in stations:
            station.stop()


def test_a_station_that_cannot_be_reached_back_stays_active_while_linked(
        tmp_path_factory, operators):
    root, owners = operators
    unreachable_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    hidden = StationProcess(tmp_path_factory.mktemp("nat-hidden"),
                            env={**LINE, "MESHSITE_PUBLIC_URL": unreachable_url})
    hub = StationProcess(tmp_path_factory.mktemp("nat-hub"), env=LINE)
    try:
        _bring_up([hidden, hub], root, owners[:2])
        assert hidden.manage("meshpeer", "add", hub.url).returncode == 0

        def hidden_active() -> bool:
            peer = _peer(hub, "DL1LN")
            return bool(peer and peer["state"] == "active" and peer["linked"])

        wait_for(hidden_active, 60, "the hub sees the hidden station active over its link")
        wait_for(lambda: "do not answer" in hub.output(), 30, "the hub tried to connect back")
        # For longer than the unreachable timeout (8 s) only the link can keep it active.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert hidden_active(), _peer(hub, "DL1LN")
            time.sleep(0.5)
        assert _peer(hub, "DL1LN")["endpoint"] == ""
        hidden.stop()
        wait_for(lambda: _peer(hub, "DL1LN")["state"] in ("suspect", "unreachable"), 30,
                 "the hub notices the hidden station is gone")
    finally:
        hidden.stop()
        hub.stop()
