"""Mailbox traffic never goes on the air (issue 14, Part 97): two claimed stations on the
simulated 1200 bit/s channel with 10 % frame loss and no LAN become RF neighbours, each with a
route to the other over RF; a mailbox bundle request for an operator homed at the other is
refused with `no_lan_route` ("never goes on the air"), and no mailbox message was on the air
(every message whose fragments all went out is decoded and checked)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.rf.channel import SimulatedChannel
from mesh.link_cost import rf_base
from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.rf_air import assert_no_mail, mailbox_attempt, messages_on_air
from tests.mesh.stations import provision, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.air]

CALLS = ("DL1MB", "DL2MB")

def _route(station: StationProcess, callsign: str) -> dict | None:
    status, data = station.get("/api/routes")
    assert status == 200, data
    return next((row for row in data["routes"] if row["callsign"] == callsign), None)


@pytest.mark.timeout(900)
def test_a_station_whose_only_route_is_on_the_air_refuses_mailbox_traffic(tmp_path) -> None:
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    owners = [pki.issue(ca, callsign=call) for call in CALLS]
    with SimulatedChannel(bitrate=1200, loss=0.1, seed=31, lifetime=850) as channel:
        env = {"MESHSITE_RF_KISS": f"tcp://127.0.0.1:{channel.port}",
               "MESHSITE_RF_ID_INTERVAL": "120", "MESHSITE_RF_AIRTIME_SHARE": "0.3",
               "MESHSITE_RF_ROUTE_INTERVAL": "60", "MESHSITE_RF_SYNC_INTERVAL": "20"}
        stations = [StationProcess(tmp_path / f"mb{index}", env=env) for index in range(2)]
        try:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda s: provision(s[0], roots=[root], owner=s[1],
                                                  callsign=s[2]),
                              zip(stations, owners, CALLS, strict=True)))
                list(pool.map(lambda station: station.start(timeout=240), stations))
            one, two = stations
            wait_for(lambda: (_route(two, CALLS[0]) or {}).get("cost", 0) >= rf_base(1200),
                     600, "DL2MB routes to DL1MB over RF", interval=1)
            home = _route(two, CALLS[0])["destination"]
            refused = mailbox_attempt(two, home, CALLS[0])
            assert refused.splitlines()[0] == "no_lan_route", refused
            assert "never goes on the air" in refused, refused
            assert one.get("/api/status")[1]["rf"]["source"] == "DL1MB-10"
        finally:
            for station in stations:
                station.stop()
        transmissions = channel.snapshot()
    messages = messages_on_air(transmissions)
    types = {message.get("type") for message in messages}
    assert {"RF_CREDENTIAL", "ROUTE_UPDATE"} <= types, types  # the air did carry the mesh
    assert_no_mail(messages)
