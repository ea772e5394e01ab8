"""POST /api/claim-station: LoTW and Meshsite certificates claim; every refusal has its code."""

from __future__ import annotations

import base64

import pytest
from django.test import Client

from certificates import services
from certificates.models import Station, StationState
from certificates.selectors import station_get
from tests.certificates import pki
from tests.certificates.conftest import claim_body

pytestmark = pytest.mark.django_db


def post_claim(client: Client, body: dict):
    return client.post("/api/claim-station", body, content_type="application/json")


def test_lotw_certificate_claims_the_station(client, alice):
    assert client.get("/api/status").json()["state"] == "unclaimed"
    response = post_claim(client, claim_body(client, alice))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["owner"] == "W1AW"
    assert body["signalingUrl"] == "ws://testserver/ws/signal"
    assert body["accessToken"].startswith("mso_")
    status = client.get("/api/status").json()
    assert status["state"] in {"claimed", "active"} and status["owner"] == "W1AW"
    info = client.get("/api/info").json()
    assert info["callsign"] == "W1AW"
    station = station_get()
    assert station.owner_fingerprint == pki.fingerprint(alice.cert)
    # the owner logs into the admin with the one-time password, no further setup
    admin = Client()
    assert admin.login(username=body["adminUsername"], password=body["adminPassword"])
    assert admin.get("/admin/certificates/certificate/").status_code == 200


def test_status_active_once_worker_heartbeats(client, alice):
    from meshsite.tasks import heartbeat

    post_claim(client, claim_body(client, alice))
    assert client.get("/api/status").json()["state"] == "claimed"
    heartbeat()
    assert client.get("/api/status").json()["state"] == "active"


def test_meshsite_ed25519_chain_claims(client, bob):
    response = post_claim(client, claim_body(client, bob))
    assert response.status_code == 200, response.content
    assert response.json()["owner"] == "DL1BOB"


def test_meshsite_ec_chain_claims(client, carol):
    response = post_claim(client, claim_body(client, carol))
    assert response.status_code == 200, response.content
    assert response.json()["owner"] == "G4CAR"


def test_claim_delegation_is_a_credential_other_stations_accept(client, bob):
    post_claim(client, claim_body(client, bob))
    credential = services.station_credential()
    assert credential is not None and credential["callsign"] == "DL1BOB"
    verified = services.station_credential_verify(credential)
    assert verified.station_id == station_get().station_id
    assert verified.callsign == "DL1BOB"
    assert verified.fingerprint == pki.fingerprint(bob.cert)
    assert client.get("/api/station-credential").json() == credential


def test_second_claim_is_403(client, alice, bob):
    assert post_claim(client, claim_body(client, alice)).status_code == 200
    nonce = services.nonce_issue(purpose="claim")
    response = post_claim(client, claim_body(client, bob, nonce=nonce))
    assert response.status_code == 403
    assert response.json()["error"] == "already_claimed"
    assert client.post("/api/claim-station/nonce").status_code == 403
    assert station_get().owner_callsign == "W1AW"


def refused(client, body, code, status=400):
    response = post_claim(client, body)
    assert response.status_code == status, response.content
    assert response.json()["error"] == code, response.json()
    assert Station.objects.get().state == StationState.UNCLAIMED
    return response.json()


def test_replayed_nonce_is_bad_nonce(client, alice):
    body = claim_body(client, alice)
    wrong = dict(body, signature=base64.b64encode(b"x" * 128).decode())
    refused(client, wrong, "bad_proof")  # the nonce is used up by this attempt
    refused(client, body, "bad_nonce")


def test_unknown_nonce_is_bad_nonce(client, alice):
    body = claim_body(client, alice, nonce="A" * 32)
    refused(client, body, "bad_nonce")


def test_nonce_for_another_purpose_is_bad_nonce(client, alice):
    nonce = services.nonce_issue(purpose="signal-register")
    refused(client, claim_body(client, alice, nonce=nonce), "bad_nonce")


def test_signature_by_the_wrong_key_is_bad_proof(client, alice):
    mallory = pki.lotw_user("N0MAL")
    refused(client, claim_body(client, alice, signer=mallory), "bad_proof")


def test_callsign_mismatch(client, alice):
    refused(client, claim_body(client, alice, callsign="K2ABC"), "callsign_mismatch")


def test_bad_callsign(client, alice):
    refused(client, claim_body(client, alice, callsign="GUEST"), "bad_callsign")


def test_expired_certificate(client, mesh_pki, settings):
    root, _ = mesh_pki
    intermediate = pki.issue(root, callsign="DL0CB", ca=True, not_before=pki.NOW - 399 * pki.DAY)
    old = pki.issue(intermediate, callsign="DL1OLD", not_before=pki.NOW - 300 * pki.DAY,
                    not_after=pki.NOW - pki.DAY)
    body = claim_body(client, old)
    refused(client, body, "expired")
    settings.MESHSITE_ALLOW_EXPIRED_CERTIFICATES = True
    response = post_claim(client, claim_body(client, old))
    assert response.status_code == 200
    assert response.json()["expired"] is True


def test_blacklisted_intermediate(client, bob):
    services.certificate_blacklist(fingerprint=pki.fingerprint(bob.chain[0]), reason="stolen")
    refused(client, claim_body(client, bob), "blacklisted")


def test_untrusted_chain(client, lotw_trusted):
    _, stranger = pki.meshsite_chain("N0MAL")
    refused(client, claim_body(client, stranger), "untrusted_root")


def test_missing_intermediate_is_chain_incomplete(client, alice):
    body = claim_body(client, alice)
    body["chain"] = []
    refused(client, body, "chain_incomplete")


def test_garbage_certificate_is_malformed(client, alice):
    body = claim_body(client, alice)
    body["certificate"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    refused(client, body, "malformed")


def test_no_trust_roots_yet_is_untrusted_root(client, db):
    user = pki.lotw_user("W1AW")
    refused(client, claim_body(client, user), "untrusted_root")


NASTY_BODIES = [
    None, [], "text", 42, {}, {"certificate": 1}, {"certificate": "x", "station": "W1AW"},
    {"certificate": "x", "station": {"callsign": None}, "nonce": "n", "signature": "s"},
    {"certificate": "x", "chain": "notalist", "station": {"callsign": "W1AW"}, "nonce": "n",
     "signature": "s"},
    {"certificate": "x", "chain": [1, 2], "station": {"callsign": "W1AW"}, "nonce": "n",
     "signature": "s"},
    {"certificate": "\u00e9\u0000", "station": {"callsign": "W1AW", "metadata": [1]},
     "nonce": "n", "signature": "s"},
    {"certificate": "x" * 70000, "station": {"callsign": "W1AW"}, "nonce": "n",
     "signature": "s"},
]


@pytest.mark.parametrize("body", NASTY_BODIES)
def test_no_500_for_bad_claim_bodies(client, alice, body):
    response = client.post("/api/claim-station", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert set(response.json()) >= {"error", "detail"}


def test_no_500_for_non_json(client, alice):
    response = client.post("/api/claim-station", b"\xff\xfe{", content_type="application/json")
    assert response.status_code == 400
    response = client.post("/api/claim-station", "a=b", content_type="text/plain")
    assert response.status_code in {400, 415}


@pytest.mark.parametrize("signature", ["!!!", "", "A" * 9000, "QUJD"])
def test_no_500_for_bad_signatures(client, alice, signature):
    body = claim_body(client, alice)
    body["signature"] = signature
    response = post_claim(client, body)
    assert response.status_code == 400
    assert response.json()["error"] in {"bad_proof", "invalid"}


def test_metadata_too_large(client, alice):
    body = claim_body(client, alice, metadata={"x": "y" * 5000})
    refused(client, body, "too_large")
