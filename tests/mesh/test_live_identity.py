"""A station follows its own claim, owner-token rotation and a blacklisting of its owner while it
runs (no restart): links, signaling's serverOwner, status and publishing. Stations are real
runstation subprocesses on loopback, started unclaimed as the README tells an operator."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from cryptography.hazmat.primitives import hashes

from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.stations import blacklist, provision, wait_for

pytestmark = pytest.mark.integration

# Default reconnect backoff: a peer that refused as unclaimed is dialled again within seconds.
FAST = {"MESHSITE_MESH_DIAL_LEARNT_PEERS": "off"}


@pytest.fixture(scope="module")
def people():
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    return {"root": root, "alice": pki.issue(ca, callsign="DL1A"),
            "bob": pki.issue(ca, callsign="DL1B")}


def _files(tmp_path, name: str, who: pki.Identity) -> list[str]:
    cert, key, chain = (tmp_path / f"{name}.pem", tmp_path / f"{name}.key",
                        tmp_path / f"{name}-chain.pem")
    cert.write_text(who.pem)
    key.write_bytes(pki.private_pem(who.key))
    chain.write_text("".join(who.chain_pem))
    return ["--cert", str(cert), "--key", str(key), "--chain", str(chain)]


def _claim_at_console(station: StationProcess, files: list[str]) -> dict:
    result = station.manage("claimstation", *files, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _linked(station: StationProcess, callsign: str) -> bool:
    _, peers = station.get("/api/peers")
    return any(p["callsign"] == callsign and p["authenticated"] and p["state"] == "active"
               and p["linked"] for p in peers)


def _server_owner(station: StationProcess) -> str | None:
    async def ask() -> str | None:
        async with websockets.connect(station.ws_url + "/ws/signal") as ws:
            await ws.send(json.dumps({"type": "REGISTER", "callsign": "GUEST"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "REGISTERED":
                    return frame["serverOwner"]

    return asyncio.run(ask())


def _publish(station: StationProcess, token: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        station.url + "/api/content-catalog?path=hello.txt&priority=3", data=b"hello",
        method="POST", headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def pair(tmp_path_factory, people):
    stations = []
    try:
        for name in ("a", "b"):
            station = StationProcess(tmp_path_factory.mktemp(f"live-{name}"), env=FAST)
            provision(station, roots=[people["root"]], owner=None)  # trust root only
            stations.append(station.start())
        yield stations
    finally:
        for station in stations:
            station.stop()


def test_claimed_while_running_links_rotates_and_follows_a_blacklisted_owner(
        pair, people, tmp_path):
    a, b = pair
    assert a.get("/api/status")[1]["state"] == "unclaimed"
    assert _server_owner(a) is None
    result = a.manage("meshpeer", "add", b.url)
    assert result.returncode == 0, result.stderr

    claim_a = _claim_at_console(a, _files(tmp_path, "alice", people["alice"]))
    _claim_at_console(b, _files(tmp_path, "bob", people["bob"]))
    took = wait_for(lambda: _linked(a, "DL1B") and _linked(b, "DL1A"), 20,
                    "the link comes up after both claims, without a restart")
    print(f"\nlink up {took:.2f}s after the second claim")
    assert a.get("/api/status")[1]["owner"] == "DL1A"
    wait_for(lambda: _server_owner(a) == "DL1A", 10, "signaling's serverOwner follows the claim")
    assert "station identity changed" in a.output()

    # Owner-token rotation: the old token stops working at once, the new one works.
    old_token = claim_a["accessToken"]
    assert _publish(a, old_token) in (200, 201)
    rotated = a.manage("claimstation", "--rotate-token", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new_token = json.loads(rotated.stdout)["accessToken"]
    assert _publish(a, old_token) in (401, 403)
    assert _publish(a, new_token) in (200, 201)

    # The owner's certificate blacklisted here: the station cannot vouch for itself any more.
    alice_fp = people["alice"].cert.fingerprint(hashes.SHA256()).hex()
    blacklist(a, alice_fp, "key compromised")
    wait_for(lambda: a.get("/api/status")[1].get("ownerBlacklisted") is True, 10,
             "status shows the blacklisted owner")
    assert a.get("/api/status")[1]["state"] == "claimed"
    wait_for(lambda: _server_owner(a) is None, 10, "serverOwner withdrawn")
    wait_for(lambda: not _linked(b, "DL1A") and not _linked(a, "DL1B"), 20,
             "the link made under the old identity is closed and not made again")
    assert _publish(a, new_token) == 409
