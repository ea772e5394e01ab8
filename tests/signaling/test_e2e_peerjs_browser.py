"""The unmodified `peerjs` npm client (1.5.5) in headless Debian Chromium, through a station.

The whole run (Redis, a daphne station, the page server, Chromium) happens inside a private
network namespace made by `unshare -n`, with a veth pair and a default route so that Chromium
gathers a host candidate (specs/test-infrastructure.md); see tests/signaling/e2e/browser_peerjs.py.
`peerjs` is installed from npm at test time into a cache folder (never committed):
$E2E_CACHE_DIR, default ~/.cache/meshsite-tests.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.chromium import chromium_missing, run_in_namespace
from tests.environment import requirement_missing
from tests.harness import REPO

PEERJS_VERSION = "1.5.5"
SCRIPT = REPO / "tests" / "signaling" / "e2e" / "browser_peerjs.py"

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.netns,
              pytest.mark.timeout(240)]


def _peerjs_dist() -> Path:
    cache = Path(os.environ.get("E2E_CACHE_DIR", Path.home() / ".cache" / "meshsite-tests"))
    prefix = cache / f"peerjs-{PEERJS_VERSION}"
    dist = prefix / "node_modules" / "peerjs" / "dist" / "peerjs.min.js"
    if not dist.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), f"peerjs@{PEERJS_VERSION}",
                        "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True, timeout=180, capture_output=True)
    return dist


@pytest.fixture(scope="module")
def browser_run() -> dict:
    missing = chromium_missing("npm")
    if missing:
        requirement_missing(missing)
    dist = _peerjs_dist()
    return run_in_namespace(SCRIPT, "--peerjs-js", str(dist), timeout=200)


def test_peerjs_peers_open_and_exchange_data_both_ways(browser_run: dict) -> None:
    # Alice's id came from the station's GET /peerjs/peerjs/id (cross-origin: CORS).
    assert browser_run["aliceId"] and browser_run["aliceId"] != "bob-e2e"
    assert browser_run["bobId"] == "bob-e2e"
    assert browser_run["bobGot"] == ["hello from alice"]
    assert browser_run["aliceGot"] == "reply to hello from alice"


def test_peerjs_taken_id_is_refused(browser_run: dict) -> None:
    assert browser_run["idTaken"]["type"] == "unavailable-id"
    assert "bob-e2e" in browser_run["idTaken"]["message"]


def test_peerjs_absent_peer_is_unavailable(browser_run: dict) -> None:
    unavailable = browser_run["unavailable"]
    assert unavailable["type"] == "peer-unavailable"
    assert "nobody-is-here" in unavailable["message"]


def test_native_js_client_opens_a_data_channel_in_chromium(browser_run: dict) -> None:
    """meshsite-signal.js, served by the station, signals a real RTCPeerConnection."""
    assert browser_run["nativeBobGot"] == ["hello over native signaling"]
    assert browser_run["nativeAliceGot"] == "reply to hello over native signaling"
