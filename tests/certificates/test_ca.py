"""The small CA: `castation`, POST /api/issue-certificate, the hourly limit, the audit trail."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError

from certificates import services
from certificates.models import IssuedCertificate
from certificates.x509tools import (
    LOTW_CALLSIGN_OID,
    fingerprint,
    read_license,
    validate_chain,
)
from tests.certificates import pki
from tests.certificates.conftest import claim_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_token(client, alice) -> str:
    response = client.post("/api/claim-station", claim_body(client, alice),
                           content_type="application/json")
    return response.json()["accessToken"]


@pytest.fixture
def ca_station(tmp_path, mesh_pki, owner_token, settings):
    """This station issues with the Meshsite intermediate DL0CA (may issue, pathLen 0)."""
    root, _ = mesh_pki
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    (tmp_path / "ca.pem").write_text(ca.pem + "".join(ca.chain_pem))
    (tmp_path / "ca.key").write_bytes(pki.private_pem(ca.key))
    settings.MESHSITE_CA_KEY_FILE = tmp_path / "data" / "ca_key.pem"
    call_command("castation", "--cert", str(tmp_path / "ca.pem"), "--key",
                 str(tmp_path / "ca.key"), stdout=open(os.devnull, "w"))  # noqa: SIM115
    return ca


def csr_for(callsign: str, key=None):
    key = key or pki.ed_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(LOTW_CALLSIGN_OID, callsign)]))
           .sign(key, None))
    return csr, key


def issue_body(csr, proof: pki.Identity, **extra) -> dict:
    der = csr.public_bytes(serialization.Encoding.DER)
    return {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
            "proofOfLicense": {"certificate": proof.pem, "chain": proof.chain_pem,
                               "signature": proof.sign(der)}, **extra}


def post_issue(client, token, body):
    return client.post("/api/issue-certificate", body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def test_ca_key_is_stored_0600_and_info_says_ca(client, ca_station, settings):
    mode = stat.S_IMODE(settings.MESHSITE_CA_KEY_FILE.stat().st_mode)
    assert mode == 0o600
    assert "ca" in client.get("/api/info").json()["capabilities"]


def test_issue_certificate(client, ca_station, bob, owner_token):
    csr, _ = csr_for("DL1BOB")
    response = post_issue(client, owner_token, issue_body(csr, bob, licenseClass="A"))
    assert response.status_code == 201, response.content
    body = response.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    info = read_license(cert)
    assert info.callsign == "DL1BOB" and info.license_class == "A" and info.can_issue is False
    assert cert.subject.get_attributes_for_oid(LOTW_CALLSIGN_OID)[0].value == "DL1BOB"
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in body["chain"]]
    # Now, not pki.NOW (when the test PKI was made, maybe many minutes ago in a long run):
    # the CA dates what it issues 5 minutes back only.
    validate_chain(cert, chain, [chain[-1]], now=dt.datetime.now(dt.UTC))
    # an issued certificate is itself a license this station accepts
    services.license_verify(certificate=body["certificate"], chain=body["chain"],
                            callsign="DL1BOB")
    record = IssuedCertificate.objects.get()
    assert record.fingerprint == fingerprint(cert) == body["fingerprint"]
    assert record.proof_fingerprint == fingerprint(bob.cert)
    assert record.requested_by == "W1AW"


def test_csr_for_another_callsign_is_callsign_mismatch(client, ca_station, bob, owner_token):
    csr, _ = csr_for("N0MAL")
    response = post_issue(client, owner_token, issue_body(csr, bob))
    assert response.status_code == 400 and response.json()["error"] == "callsign_mismatch"


def test_proof_over_something_else_is_bad_proof(client, ca_station, bob, owner_token):
    csr, _ = csr_for("DL1BOB")
    body = issue_body(csr, bob)
    body["proofOfLicense"]["signature"] = bob.sign(b"another message")
    response = post_issue(client, owner_token, body)
    assert response.status_code == 400 and response.json()["error"] == "bad_proof"


def test_bad_csr(client, ca_station, bob, owner_token):
    body = issue_body(csr_for("DL1BOB")[0], bob)
    body["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
    response = post_issue(client, owner_token, body)
    assert response.status_code == 400 and response.json()["error"] == "bad_csr"


def test_issuing_rights_need_issuing_rights(client, ca_station, bob, owner_token):
    csr, _ = csr_for("DL1BOB")
    response = post_issue(client, owner_token, issue_body(csr, bob, canIssue=True))
    assert response.status_code == 403 and response.json()["error"] == "not_authorised"


def test_eleventh_issuance_in_an_hour_is_429(client, ca_station, bob, owner_token):
    for number in range(10):
        csr, _ = csr_for("DL1BOB")
        response = post_issue(client, owner_token, issue_body(csr, bob))
        assert response.status_code == 201, (number, response.content)
    csr, _ = csr_for("DL1BOB")
    response = post_issue(client, owner_token, issue_body(csr, bob))
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 3500 <= int(response["Retry-After"]) <= 3600
    assert IssuedCertificate.objects.count() == 10


def test_station_without_ca_is_403(client, bob, owner_token):
    csr, _ = csr_for("DL1BOB")
    response = post_issue(client, owner_token, issue_body(csr, bob))
    assert response.status_code == 403 and response.json()["error"] == "not_a_ca_station"


def test_issue_needs_the_owner(client, ca_station, bob):
    csr, _ = csr_for("DL1BOB")
    response = client.post("/api/issue-certificate", issue_body(csr, bob),
                           content_type="application/json")
    assert response.status_code == 401


def test_castation_refuses_a_non_ca_and_a_foreign_key(tmp_path, bob, settings):
    settings.MESHSITE_CA_KEY_FILE = tmp_path / "ca_key.pem"
    (tmp_path / "bob.pem").write_text(bob.pem + "".join(bob.chain_pem))
    (tmp_path / "bob.key").write_bytes(pki.private_pem(bob.key))
    with pytest.raises(CommandError, match="not_a_ca"):
        call_command("castation", "--cert", str(tmp_path / "bob.pem"), "--key",
                     str(tmp_path / "bob.key"))
    root, _ = pki.meshsite_chain("DL9XX")
    ca = pki.issue(root, callsign="DL0ZZ", ca=True, can_issue=True)
    services.trustroot_add(certificate=root.cert)
    (tmp_path / "ca.pem").write_text(ca.pem + "".join(ca.chain_pem))
    with pytest.raises(CommandError, match="bad_key"):
        call_command("castation", "--cert", str(tmp_path / "ca.pem"), "--key",
                     str(tmp_path / "bob.key"))
    assert not settings.MESHSITE_CA_KEY_FILE.exists()


def test_issue_with_no_500_on_bad_bodies(client, ca_station, owner_token):
    for body in [None, [], {"csr": 1}, {"csr": "x", "proofOfLicense": "y"},
                 {"csr": "x", "proofOfLicense": {"certificate": "x", "signature": "%%"}}]:
        response = client.post("/api/issue-certificate", body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {owner_token}")
        assert response.status_code == 400, (body, response.content)


def test_signature_is_base64(bob):
    assert base64.b64decode(bob.sign(b"x"))
