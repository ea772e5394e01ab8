"""The radio settings and the TNC connection of a real station: bad MESHSITE_RF_* values and
`runstation --kiss` stop the station with a message naming them; a station started with
`--kiss` connects to its TNC (the simulated channel), shows the connection and the stations it
hears in /api/status and the admin, and reconnects when the TNC goes away and comes back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.rf.channel import SimulatedChannel
from mesh import kiss
from mesh.ax25 import Frame
from mesh.radio import RF_STATE_KEY
from meshsite.redisconn import get_redis
from tests.harness import REPO, StationProcess, http_json, station_env
from tests.mesh.stations import wait_for


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("MESHSITE_RF_KISS", "http://127.0.0.1:8001", "expected tcp://HOST:PORT or serial"),
    ("MESHSITE_RF_KISS", "tcp://127.0.0.1", "expected tcp://HOST:PORT"),
    ("MESHSITE_RF_KISS", "serial:///dev/ttyUSB0?baud=7", "baud='7'"),
    ("MESHSITE_RF_SSID", "16", "integer from 0 to 15"),
    ("MESHSITE_RF_BITRATE", "fast", "integer from 50"),
    ("MESHSITE_RF_AIRTIME_SHARE", "0", "a number from 0.001 to 1.0"),
    ("MESHSITE_RF_ID_INTERVAL", "601", "integer from 10 to 600"),
])
def test_bad_radio_settings_name_the_variable(tmp_path: Path, name: str, value: str,
                                              expected: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO,
                            env=station_env(tmp_path, **{name: value}),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert name in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_runstation_kiss_option_is_checked(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "runstation", "--data-dir", str(tmp_path), "--kiss",
         "tcp://127.0.0.1:notaport"], cwd=REPO, env=station_env(tmp_path),
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "--kiss is not valid" in result.stderr and "port must be a number" in result.stderr


@pytest.mark.django_db
def test_status_and_admin_show_the_radio(client, admin_client, settings) -> None:
    settings.RF_KISS = "tcp://127.0.0.1:8001"
    body = client.get("/api/status").json()
    assert body["rf"]["configured"] and body["rf"]["state"] == "unknown"  # meshd not running
    assert (body["rf"]["ssid"], body["rf"]["bitrate"], body["rf"]["idInterval"]) == (10, 1200, 600)
    get_redis().set(RF_STATE_KEY, json.dumps({
        "url": "tcp://127.0.0.1:8001", "state": "waiting", "since": time.time(),
        "lastError": "cannot open tcp://127.0.0.1:8001: Connection refused", "connects": 0,
        "heard": [{"source": "W1AW-5", "at": time.time()}]}))
    body = client.get("/api/status").json()
    assert body["rf"]["state"] == "waiting" and "refused" in body["rf"]["lastError"]
    page = admin_client.get("/admin/mesh/peer/").content.decode()
    assert "Radio: TNC tcp://127.0.0.1:8001 is waiting" in page
    assert "Connection refused" in page and "W1AW-5" in page
    settings.RF_KISS = None
    assert client.get("/api/status").json()["rf"] == {"configured": False}


@pytest.mark.integration
def test_station_connects_to_its_tnc_and_reconnects(tmp_path: Path) -> None:
    channel = SimulatedChannel(bitrate=9600, seed=1, lifetime=300)
    port = channel.start()
    station = StationProcess(tmp_path / "station",
                             extra_args=("--kiss", f"tcp://127.0.0.1:{port}"),
                             env={"MESHSITE_MESH_RECONNECT_MIN": "0.2",
                                  "MESHSITE_MESH_RECONNECT_MAX": "1"})
    try:
        station.start(timeout=120)

        def rf() -> dict:
            return http_json(station.url + "/api/status")[1].get("rf", {})

        wait_for(lambda: rf().get("state") == "connected", 60, "station connected to its TNC")
        assert rf()["url"] == f"tcp://127.0.0.1:{port}"

        async def someone_transmits() -> None:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(kiss.encode(Frame.ui(source="W1AW-5", destination="ID",
                                              info=b"W1AW-5 testing").encode()))
            await writer.drain()
            await asyncio.to_thread(wait_for, lambda: rf().get("heard"), 30, "heard on air")
            writer.close()

        asyncio.run(someone_transmits())
        assert rf()["heard"][0]["source"] == "W1AW-5"
        assert rf()["framesIn"] == 1

        channel.stop()  # the TNC goes away
        wait_for(lambda: rf().get("state") == "waiting", 30, "station noticed the TNC is gone")
        assert rf()["lastError"]
        channel = SimulatedChannel(bitrate=9600, seed=2, lifetime=300, port=port)
        channel.start()
        wait_for(lambda: rf().get("state") == "connected" and rf().get("connects") == 2, 60,
                 "station reconnected to its TNC")
    finally:
        station.stop()
        channel.stop()
