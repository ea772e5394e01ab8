"""The PWA in headless Debian Chromium against three real stations (runstation subprocesses),
inside a private network namespace with a veth address: http://127.0.0.1 is a secure context,
http://10.99.0.1 is not (tests/pwa/e2e/run.py does the browsing; this file checks what it saw).

One run (about 3 minutes on a busy two-core machine) serves every test below. Screenshots of
every page at desktop and phone width are kept in $PWA_ARTIFACTS (default tests/artifacts/pwa,
ignored by git); the path is printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.chromium import chromium_missing, run_in_namespace
from tests.environment import requirement_missing
from tests.harness import REPO

SCRIPT = REPO / "tests" / "pwa" / "e2e" / "run.py"

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.netns,
              pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def run() -> dict:
    # openssl writes the TQSL-style RC2-40 .p12
    missing = chromium_missing("openssl")
    if missing:
        requirement_missing(missing)
    artifacts = Path(os.environ.get("PWA_ARTIFACTS", REPO / "tests" / "artifacts" / "pwa"))
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    print(f"\nPWA screenshots: {artifacts}")
    return run_in_namespace(SCRIPT, "--artifacts", str(artifacts), timeout=840)


def test_claim_on_an_insecure_origin_with_a_p12(run):
    assert run["insecureContext"] == {"secure": False, "sw": False, "subtle": False}
    assert run["callsignBeforeClaim"] == "W1AW"
    assert run["claimedOwner"] == "W1AW"
    assert run["signedWith"] == "forge"  # no WebCrypto on plain HTTP to a LAN address
    assert run["insecureOperatorSeesPublish"]  # the claim signed the operator in
    # every page works there, live, without a service worker
    assert set(run["insecurePages"]) == {"/", "/stations", "/content", "/talk", "/signin"}


def test_claim_failures_say_what_was_wrong(run):
    assert "password does not open this file" in run["wrongPassword"]
    assert "does not come from an authority this station trusts" in run["untrustedRoot"]


def test_home_shows_state_and_the_mode_indicator_follows_the_network(run):
    assert run["secureContext"] is True
    assert run["homeOwner"] == "W1AW"
    assert run["homeState"] in ("claimed", "active")
    assert run["modeOnline"] == {"text": "online", "badge": "mode mode-online"}
    assert run["modeOffline"] == {"text": "offline", "badge": "mode mode-offline"}


def test_publish_and_open_content_and_a_peers_content(run):
    assert run["published"]["url"].endswith("/c/W1AW/notices/water.txt")
    assert run["published"]["body"] == "Drinking water at the school gym from 14:00"
    # B's personal (priority 4) page: only B holds it, A fetches it over the mesh link.
    assert run["peerContent"] == "Shelter at the town hall"


def test_a_conflict_shows_both_versions(run):
    assert run["conflictTitle"] == "DL1D/net.html"
    assert sorted(run["conflict"]) == ["B: net opens on 145.500", "C: net opens on 146.520"]


def test_two_pages_talk_over_a_webrtc_data_channel(run):
    talk = run["talk"]
    assert talk["bobUnread"] == "1" and talk["bobUnreadAfter"] == 0
    assert "hello from alice" in talk["bobSaw"]
    assert "hello alice, bob here" in talk["aliceSaw"]
    # kept in IndexedDB: after a reload the conversation is still there
    assert "hello from alice" in talk["aliceHistoryAfterReload"]
    assert "hello alice, bob here" in talk["aliceHistoryAfterReload"]


def test_viewed_pages_open_from_the_service_worker_when_the_station_is_down(run):
    assert run["offlineContent"] == {"h1": "Content", "lists": True}
    assert "cannot be reached" in run["offlineBanner"]
    assert run["offlinePublished"] == "Drinking water at the school gym from 14:00"


def test_admin_dashboard_draws_the_three_linked_stations(run):
    assert sorted(run["adminMap"]["stations"]) == ["DL1D", "DL1D", "W1AW"]
    assert run["adminMap"]["links"] == 2
    assert "W1AW · Meshsite control plane" in run["adminMap"]["title"]


def test_no_page_error_and_no_serious_accessibility_violation(run):
    assert run["pageErrors"] == {"secure": [], "insecure": []}
    assert set(run["axe"]) >= {"claim", "home", "stations", "content", "talk", "signin"}
    assert {page: v for page, v in run["axe"].items() if v} == {}
    assert len(run["screenshots"]) >= 20


def test_a_station_qr_code_is_read_from_a_photo(run):
    assert "Station found" in run["qrScan"]["message"]
    assert run["qrScan"]["endpoint"] == "http://10.99.0.7:8080"


def test_webcrypto_signs_in_a_secure_context(run):
    assert run["webCryptoSignature"] == {"via": "webcrypto", "verified": True}


def test_get_your_own_station_gives_a_working_download_token(run):
    got = run["getStation"]
    assert "password does not open this file" in got["wrongPassword"]
    assert "does not come from an authority this station trusts" in got["untrustedRoot"]
    assert got["signedWith"] == "forge"  # plain HTTP to a LAN address: no WebCrypto
    assert got["callsign"] == "W1AW" and len(got["token"]) >= 20 and got["expires"]
    for platform, commands in got["commands"].items():
        assert f"--index {got['stationUrl']} --callsign W1AW --token {got['token']}" in commands, \
            platform
        assert f"{got['stationUrl']}/get/meshsite-install.py" in commands, platform
    # The token opens the package index: 200, or 404 "no release" (none is published on this
    # station) where without it, or with a wrong one, the answer is 401.
    status, body = got["index"]["withToken"]
    assert status == 200 or (status == 404 and "no_release" in body), (status, body)
    assert got["index"]["without"][0] == 401
    assert got["index"]["wrongToken"][0] == 401
    assert "get" in run["axe"] and not run["axe"]["get"]
