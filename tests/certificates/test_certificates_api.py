"""Certificate API (list, add, detail, blacklist), trust roots, owner tokens."""

from __future__ import annotations

import pytest
from django.test import Client

from certificates import services
from certificates.models import BlacklistEntry, Certificate, OwnerToken
from tests.certificates import pki
from tests.certificates.conftest import claim_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_token(client, alice) -> str:
    response = client.post("/api/claim-station", claim_body(client, alice),
                           content_type="application/json")
    assert response.status_code == 200
    return response.json()["accessToken"]


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_list_is_public_and_paginated(client, owner_token):
    body = client.get("/api/certificates").json()
    assert body["count"] == 3  # root, production CA, alice
    summary = {row["callsign"]: row for row in body["results"]}["W1AW"]
    assert summary["trustLevel"] == "peer"
    assert set(summary) >= {"fingerprint", "callsign", "licenseClass", "trustLevel", "state"}
    roots = client.get("/api/certificates?trustLevel=root").json()
    assert roots["count"] == 1
    assert client.get("/api/certificates?trustLevel=bogus").status_code == 400
    assert client.get("/api/certificates?callsign=w1aw").json()["count"] == 1
    assert client.get("/api/certificates?page=99").status_code == 404


def test_detail_has_extensions_and_chain(client, alice, owner_token):
    fp = pki.fingerprint(alice.cert)
    body = client.get(f"/api/certificates/{fp}").json()
    assert body["extensions"]["callsign"] == "W1AW"
    assert body["extensions"]["dxcc"] == 291
    assert body["extensions"]["issuerChain"] == [pki.fingerprint(c) for c in alice.chain]
    assert len(body["chain"]) == 2
    assert body["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    missing = client.get("/api/certificates/" + "0" * 64)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_add_needs_the_owner(client, owner_token, mesh_pki):
    _, bob = mesh_pki
    body = {"certificate": bob.pem, "chain": bob.chain_pem, "trustLevel": "peer"}
    anonymous = client.post("/api/certificates", body, content_type="application/json")
    assert anonymous.status_code == 401
    wrong = client.post("/api/certificates", body, content_type="application/json",
                        **auth("mso_nope"))
    assert wrong.status_code == 401
    created = client.post("/api/certificates", body, content_type="application/json",
                          **auth(owner_token))
    assert created.status_code == 201, created.content
    assert created.json()["extensions"]["callsign"] == "DL1BOB"
    again = client.post("/api/certificates", body, content_type="application/json",
                        **auth(owner_token))
    assert again.status_code == 200


def test_add_validates_the_chain(client, owner_token, mesh_pki):
    _, bob = mesh_pki
    response = client.post("/api/certificates", {"certificate": bob.pem, "chain": []},
                           content_type="application/json", **auth(owner_token))
    assert response.status_code == 400 and response.json()["error"] == "chain_incomplete"
    response = client.post("/api/certificates",
                           {"certificate": bob.pem, "chain": bob.chain_pem,
                            "trustLevel": "intermediate"},
                           content_type="application/json", **auth(owner_token))
    assert response.json()["error"] == "not_a_ca"


def test_add_root_through_the_api(client, owner_token):
    root = pki.meshsite_root("ec")
    response = client.post("/api/certificates", {"certificate": root.pem, "trustLevel": "root"},
                           content_type="application/json", **auth(owner_token))
    assert response.status_code == 201
    assert Certificate.objects.get(fingerprint=pki.fingerprint(root.cert)).trust_level == "root"
    listing = client.get("/api/trust-roots").json()
    assert listing["count"] == 2
    leaf = pki.issue(root, callsign="W1LEAF")
    response = client.post("/api/trust-roots", {"certificate": leaf.pem},
                           content_type="application/json", **auth(owner_token))
    assert response.status_code == 400 and response.json()["error"] == "not_a_ca"
    removed = client.delete(f"/api/trust-roots/{pki.fingerprint(root.cert)}",
                            **auth(owner_token))
    assert removed.status_code == 204
    assert client.get("/api/trust-roots").json()["count"] == 1
    assert client.delete(f"/api/trust-roots/{'1' * 64}", **auth(owner_token)).status_code == 404


def test_blacklist_and_lift(client, owner_token, alice):
    fp = pki.fingerprint(alice.chain[0])  # the production CA
    url = f"/api/certificates/{fp}/blacklist"
    assert client.post(url, {"reason": "x"}, content_type="application/json").status_code == 401
    response = client.post(url, {"reason": "compromised"}, content_type="application/json",
                           **auth(owner_token))
    assert response.status_code == 200 and response.json()["blacklisted"] is True
    assert client.get(f"/api/certificates/{fp}").json()["state"] == "blacklisted"
    assert BlacklistEntry.objects.get(fingerprint=fp).created_by == "W1AW"
    # every certificate under it is refused now
    with pytest.raises(services.CertificateError) as excinfo:
        services.license_verify(certificate=alice.pem, chain=alice.chain_pem)
    assert excinfo.value.code == "blacklisted"
    lifted = client.delete(url, **auth(owner_token))
    assert lifted.status_code == 200
    services.license_verify(certificate=alice.pem, chain=alice.chain_pem)
    missing = client.post(f"/api/certificates/{'a' * 64}/blacklist", {"reason": "?"},
                          content_type="application/json", **auth(owner_token))
    assert missing.status_code == 404


def test_token_rotation_revokes_the_old_token(client, owner_token):
    rotated = client.post("/api/owner-token/rotate", **auth(owner_token))
    assert rotated.status_code == 200
    new = rotated.json()["accessToken"]
    assert new != owner_token
    assert client.post("/api/owner-token/rotate", **auth(owner_token)).status_code == 401
    revoked = client.delete("/api/owner-token", **auth(new))
    assert revoked.json() == {"revoked": 1}
    assert client.delete("/api/owner-token", **auth(new)).status_code == 401
    assert OwnerToken.objects.filter(revoked_at__isnull=True).count() == 0


def test_tokens_are_stored_hashed(owner_token):
    row = OwnerToken.objects.get()
    assert owner_token not in (row.key_hash, row.prefix)
    assert len(row.key_hash) == 64


def test_admin_session_counts_as_owner(client, alice):
    response = client.post("/api/claim-station", claim_body(client, alice),
                           content_type="application/json")
    password = response.json()["adminPassword"]
    admin = Client(enforce_csrf_checks=False)
    assert admin.login(username="W1AW", password=password)
    root = pki.meshsite_root()
    created = admin.post("/api/trust-roots", {"certificate": root.pem},
                         content_type="application/json")
    assert created.status_code == 201


def test_admin_pages_and_pem_download(client, owner_token, alice):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="W1AW")
    admin = Client()
    admin.force_login(user)
    row = Certificate.objects.get(fingerprint=pki.fingerprint(alice.cert))
    page = admin.get(f"/admin/certificates/certificate/{row.pk}/change/")
    assert page.status_code == 200 and b"download" in page.content
    pem = admin.get(f"/admin/certificates/certificate/{row.pk}/pem/")
    assert pem.status_code == 200 and pem.content.decode() == row.pem
    for url in ["/admin/certificates/certificate/?trust_level__exact=root",
                "/admin/certificates/certificate/?state__exact=trusted",
                "/admin/certificates/blacklistentry/", "/admin/certificates/issuedcertificate/",
                "/admin/certificates/station/", "/admin/certificates/ownertoken/"]:
        assert admin.get(url).status_code == 200, url
    response = admin.post("/admin/certificates/certificate/", {
        "action": "blacklist", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.state == "blacklisted"
    admin.post("/admin/certificates/certificate/", {"action": "lift_blacklist",
                                                    "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.state == "verified"
    admin.post("/admin/certificates/certificate/", {"action": "trust",
                                                    "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.state == "trusted"
    download = admin.post("/admin/certificates/certificate/", {
        "action": "download_pem", "_selected_action": [row.pk]})
    assert download["Content-Disposition"].startswith("attachment")
