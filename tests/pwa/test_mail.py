"""The Mail page (end-to-end encrypted mailbox) in headless Debian Chromium against a real
station, inside a private network namespace (tests/pwa/e2e/mail.py does the browsing; this
file checks what it saw). One run, about a minute on a busy two-core machine, serves every
test below; screenshots and what the run saw (results.json) go to $PWA_ARTIFACTS (default
tests/artifacts/pwa-mail)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.chromium import chromium_missing, run_in_namespace
from tests.environment import requirement_missing
from tests.harness import REPO
from tests.pwa.e2e.mail import (
    FIFTH,
    FIRST,
    FOURTH,
    FROM_CAROL,
    REPLY,
    SECOND,
    TO_BOTH_CAROLS,
    TO_CAROL,
)

SCRIPT = REPO / "tests" / "pwa" / "e2e" / "mail.py"

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.netns,
              pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def run() -> dict:
    missing = chromium_missing()
    if missing:
        requirement_missing(missing)
    artifacts = Path(os.environ.get("PWA_ARTIFACTS", REPO / "tests" / "artifacts" / "pwa-mail"))
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    print(f"\nMail page screenshots: {artifacts}")
    results = run_in_namespace(SCRIPT, "--artifacts", str(artifacts), timeout=540)
    (artifacts / "results.json").write_text(json.dumps(results, indent=1))
    return results


def test_both_operators_register_devices_through_the_page(run):
    assert run["aliceDevice"]["callsign"] == "W1ALI"
    assert run["bobDevice"]["callsign"] == "DL1BOB"
    assert run["aliceDevice"]["device"] == "W1ALI.1" and run["bobDevice"]["device"] == "DL1BOB.1"
    # 127.0.0.1 is a secure context: the license proof was signed by WebCrypto
    assert run["aliceDevice"]["signedWith"] == "webcrypto"
    # the station accepted the page's XEdDSA signed prekeys (it verifies them) and its keys
    assert run["prekeysBefore"] == {"W1ALI": 50, "DL1BOB": 50}


def test_a_message_waits_encrypted_and_the_plaintext_is_never_stored(run):
    assert run["firstSent"] == "Sent to DL1BOB (1 device)."
    assert run["waiting"] == [{"to": "DL1BOB", "device": 1, "source": "W1ALI", "type": 3}]
    assert run["plaintextInRows"] is False
    assert run["databaseSearched"] > 0 and run["plaintextInDatabase"] is False
    assert run["anyPlaintextInDatabase"] == []
    # taking DL1BOB's bundle used one of his one-time prekeys, for good
    assert run["prekeysAfterBundle"] == {"W1ALI": 50, "DL1BOB": 49}


def test_the_recipient_reads_the_exact_plaintext_and_acks_it(run):
    assert run["bobSaw"] == [FIRST]
    assert run["bobSawFrom"] == "W1ALI (device 1)"
    assert run["queueEmptyAfterRead"] is True


def test_both_ratchet_directions(run):
    assert run["replySent"] == "Sent to W1ALI (1 device)."
    assert run["aliceSaw"] == [FIRST, REPLY, SECOND]
    assert run["bobSawAll"] == [FIRST, REPLY, SECOND]
    # the answer went over the session the first message started: no other bundle taken
    assert run["prekeysAfterConversation"] == {"W1ALI": 50, "DL1BOB": 49}


def test_ratchet_edges_in_the_page(run):
    ratchet = run["ratchet"]
    assert ratchet["withoutOneTimeKey"] == [0, "no one-time key"]
    assert ratchet["outOfOrder"] == ["m2", "m0", "m1"]
    assert ratchet["replayRefused"] is True and ratchet["forgeryRefused"] is True
    assert ratchet["afterRefusals"] == "m3"
    # MAX_SKIP (1000) message keys skipped at most per step; MAX_SKIPPED (2000) kept at most
    assert ratchet["tooManySkipsRefused"] is True
    assert ratchet["skippedAfterOneChain"] == 1000
    assert ratchet["skippedKept"] == 2000
    assert ratchet["oldestDropped"] is True and ratchet["newestKept"] == "n0"
    # both sides started a session at once: the archived session takes over, no loss
    assert ratchet["simultaneous"] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert ratchet["converged"] is True


def test_keys_and_sessions_stay_in_indexeddb_non_extractable(run):
    assert run["bobAfterReload"] == [FIRST, REPLY, SECOND]
    stored = run["storedKeys"]
    for who, session in (("alice", "DL1BOB.1"), ("bob", "W1ALI.1")):
        keys = stored[who]
        assert sorted(keys["stores"]) == ["device", "identities", "messages", "prekeys",
                                          "sessions"], who
        assert keys["allCryptoKeys"] is True and keys["extractable"] == 0, who
        assert keys["algorithms"] == ["Ed25519", "X25519"], who
        assert keys["sessions"] == [session], who
    # DL1BOB's one used one-time prekey is gone from his browser too
    assert stored["alice"]["prekeys"] == 50 and stored["bob"]["prekeys"] == 49


def test_a_client_written_from_the_documented_format_reads_and_answers_the_page(run):
    interop = run["interop"]
    assert interop["sent"] == "Sent to G4CAR (1 device)."
    assert interop["envelopeType"] == 3  # the page started the session: a prekey message
    assert interop["carolRead"] == TO_CAROL
    assert interop["carolPrekeysLeft"] == 4  # the page used one of its one-time prekeys (DH4)
    assert interop["replyStatus"] == 200
    assert interop["pageSaw"] == [TO_CAROL, FROM_CAROL]


def test_a_409_for_a_new_device_takes_its_bundle_and_sends_to_all(run):
    interop = run["interop"]
    assert interop["sentToBoth"] == "Sent to G4CAR (2 devices)."
    # the first device in the session it answered in, the new one by a new session
    assert interop["bothRead"] == {"first": [1, TO_BOTH_CAROLS], "second": [3, TO_BOTH_CAROLS]}


def test_a_new_browser_replaces_the_device_and_the_sender_follows_the_410(run):
    assert run["bobNewDevice"]["device"] == "DL1BOB.1"
    assert "removed this device" in run["oldBobStatus"]
    [(device_id, _registration)] = run["devicesAfterNewBrowser"]["DL1BOB"]
    assert device_id == 1
    assert run["fourthSent"].startswith("Sent to DL1BOB (1 device).")
    assert "DL1BOB's identity key changed" in run["fourthSent"]
    # with the new key's fingerprint, as the new browser's page shows it
    assert f"its fingerprint is now {run['bobNewFingerprint']};" in run["fourthSent"]
    assert run["bobNewSaw"] == [FOURTH]
    assert run["prekeysAtEnd"]["DL1BOB"] == 49  # the new device's 50, one taken


def test_pages_reconnect_after_the_station_restarts(run):
    assert run["bobNewAfterRestart"] == [FOURTH, FIFTH]


def test_an_insecure_context_says_why_and_touches_no_mailbox(run):
    insecure = run["insecure"]
    assert insecure["context"] == {"secure": False, "subtle": False}
    assert "not a secure context" in insecure["why"]
    assert "MESHSITE_TLS_CERT" in insecure["why"] and "localhost" in insecure["why"]
    assert insecure["appHidden"] is True
    assert insecure["requests"] > 0 and insecure["mailboxCalls"] == []
    assert "meshsite-mail" not in insecure["databases"]


def test_no_page_error_and_no_serious_accessibility_violation(run):
    assert run["pageErrors"] == {"secure": [], "insecure": []}
    assert set(run["axe"]) == {"mail-alice-unregistered", "mail-registered", "mail-conversation",
                               "mail-insecure"}
    assert {page: v for page, v in run["axe"].items() if v} == {}
