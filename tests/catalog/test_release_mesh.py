"""A release published at station A is installable from station C two hops away: C learns the
release's entries by catalog reconciliation, and its index fetches the manifest, the metadata
and every wheel through B on demand (multi-hop forwarding). Stations in network namespaces of
their own, joined only by cables (tests/mesh/topology.py); A and C share no cable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.catalog.wheels import toy_wheel
from tests.mesh.conftest import topology
from tests.mesh.stations import wait_for

__all__ = ["topology"]

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENV = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
       "MESHSITE_MESH_ROUTE_INTERVAL": "4", "MESHSITE_CATALOG_SYNC_INTERVAL": "3"}
INSTALLER = Path(__file__).resolve().parents[2] / "catalog" / "meshsite_install.py"
A, B, C = 0, 1, 2
CALLS = ["DL1REL", "DL2REL", "DL3REL"]


def release_paths(net, i: int) -> set[str]:
    status, data = net.get_json(i, f"/api/content-catalog?origin={CALLS[A]}&pageSize=500")
    assert status == 200, data
    return {row["path"] for row in data["entries"]}


@pytest.mark.timeout(900)
def test_a_release_published_at_a_installs_from_c_two_hops_away(topology, tmp_path):
    net = topology(CALLS, [(A, B), (B, C)], env=ENV)
    net.add_peer(A, B)
    net.add_peer(B, C)
    folder = tmp_path / "wheels"
    toy_wheel(folder, "meshsite", "0.0.21", requires=("toy-dep>=1",))
    toy_wheel(folder, "toy-dep", "1.0.0")
    built = net.stations[A].manage("release", "build", "--wheels", str(folder), timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wanted = {"releases/1/manifest.json", *(f"releases/files/{p.name}"
                                            for p in folder.glob("*.whl"))}
    wait_for(lambda: wanted <= release_paths(net, C), 300,
             "C knows the release's entries (catalog reconciliation through B)")
    wait_for(lambda: any(r["callsign"] == CALLS[A] and r["hops"] == 2 for r in
                         net.get_json(C, "/api/routes")[1]["routes"]), 120,
             "C routes to A two hops away")

    # C's operator proves their license to C and gets a download token.
    nonce = net.request(C, "/api/download-token/nonce", method="POST").json()
    message = (f"meshsite-download-token-v1\nstation:{nonce['stationId']}\n"
               f"nonce:{nonce['nonce']}\n").encode()
    owner = net.owners[C]
    answer = net.request(C, "/api/download-token", method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json"},
        body=json.dumps({"certificate": owner.pem, "chain": owner.chain_pem,
                         "nonce": nonce["nonce"], "signature": owner.sign(message)}).encode())
    assert answer.status == 201, answer.body[:1000]
    token = answer.json()["token"]

    root = tmp_path / "root.pem"
    root.write_text(net.pki_root.pem)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    result = subprocess.run(
        ["ip", "netns", "exec", net.namespace(C), base_python, "-I", str(INSTALLER),
         "--index", net.stations[C].url, "--callsign", CALLS[C], "--token", token,
         "--trust-root", str(root), "--venv", str(venv), "--yes", "--state-file",
         str(tmp_path / "state.json")], capture_output=True, text=True, timeout=600,
        check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Signed by: {CALLS[A]}" in result.stdout
    shown = subprocess.run([str(venv / "bin" / "meshsite"), "runstation", "--version"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert "0.0.21" in shown.stdout, shown
    # The bodies came to C through the mesh (B holds none of them: priority 2, never asked).
    assert "body fetched through the mesh" in net.stations[C].output()
    # ... and C records who held them by callsign, not by a bare station id.
    status, data = net.get_json(C, f"/api/content-catalog?origin={CALLS[A]}&pageSize=500")
    manifest = next(row for row in data["entries"] if row["path"] == "releases/1/manifest.json")
    status, detail = net.get_json(C, f"/api/content-catalog/{manifest['entryId']}")
    assert status == 200, detail
    assert {r["callsign"] for r in detail["replicas"]} == {CALLS[A], CALLS[C]}, detail
