"""A station claimed through POST /api/claim-station while running re-advertises at once: the
other station on the LAN reads the owner's callsign in its mDNS TXT record (real mDNS between
network namespaces on a private bridge)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.certificates import pki
from tests.mesh.stations import provision
from tests.mesh.stations import wait_for as wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

# Runs inside the station's namespace: nonce, sign the delegation with the owner's key, claim.
CLAIM = """
import base64, json, sys, urllib.request
from cryptography.hazmat.primitives import serialization
from certificates.x509tools import sign_message
url, spec = sys.argv[1], json.load(open(sys.argv[2]))
def post(path, body):
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
nonce = post("/api/claim-station/nonce", {})
key = serialization.load_pem_private_key(spec["key"].encode(), None)
signature = sign_message(key, base64.b64decode(nonce["message"]))
print(json.dumps(post("/api/claim-station", {
    "certificate": spec["certificate"], "chain": spec["chain"],
    "station": {"callsign": spec["callsign"]}, "nonce": nonce["nonce"],
    "signature": base64.b64encode(signature).decode()})))
"""


def _callsign_seen(observer, claimed) -> str | None:
    for peer in observer.peers():
        if peer["endpoint"] == claimed.url:
            return peer["callsign"]
    return None


def test_claim_through_the_api_shows_in_the_mdns_txt_record(lan, tmp_path):
    root = pki.meshsite_root("ed25519")
    alice = pki.issue(root, callsign="DL1MDN")
    newcomer, observer = lan.add_station(0), lan.add_station(1)
    for station in (newcomer, observer):
        provision(station, roots=[root], owner=None)  # unclaimed, trusting the root
        station.start()
    for station in (newcomer, observer):
        station.wait_ready(120)
    wait_until(lambda: _callsign_seen(observer, newcomer) == "", 30,
               "the observer finds the unclaimed newcomer (no callsign in its TXT)")

    spec = tmp_path / "claim.json"
    spec.write_text(json.dumps({"certificate": alice.pem, "chain": alice.chain_pem,
                                "callsign": "DL1MDN",
                                "key": pki.private_pem(alice.key).decode()}))
    result = subprocess.run(["ip", "netns", "exec", newcomer.ns, sys.executable, "-c", CLAIM,
                             newcomer.url, str(spec)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["owner"] == "DL1MDN"
    took = wait_until(lambda: _callsign_seen(observer, newcomer) == "DL1MDN", 30,
                      "the observer reads the callsign from the new TXT record")
    print(f"\nclaim -> callsign in the other station's peer row (from mDNS TXT) {took:.2f}s")
