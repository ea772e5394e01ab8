"""The OpenAPI schema documents every status code these endpoints return."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

EXPECTED = {
    ("/api/claim-station/nonce", "post"): {"200", "403"},
    ("/api/claim-station", "post"): {"200", "400", "403", "415"},
    ("/api/station-credential", "get"): {"200", "409"},
    ("/api/owner-token/rotate", "post"): {"200", "401", "403", "409"},
    ("/api/owner-token", "delete"): {"200", "400", "401", "403"},
    ("/api/certificates", "get"): {"200", "400", "401", "404"},
    ("/api/certificates", "post"): {"200", "201", "400", "401", "403", "415"},
    ("/api/certificates/{fingerprint}", "get"): {"200", "401", "404"},
    ("/api/certificates/{fingerprint}/blacklist", "post"): {"200", "400", "401", "403", "404",
                                                             "415"},
    ("/api/certificates/{fingerprint}/blacklist", "delete"): {"200", "401", "403", "404"},
    ("/api/trust-roots", "get"): {"200", "401", "404"},
    ("/api/trust-roots", "post"): {"200", "201", "400", "401", "403", "415"},
    ("/api/trust-roots/{fingerprint}", "delete"): {"204", "401", "403", "404"},
    ("/api/issue-certificate", "post"): {"201", "400", "401", "403", "415", "429"},
}


def test_every_status_code_is_documented(client):
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/json").json()
    for (path, method), codes in EXPECTED.items():
        operation = schema["paths"][path][method]
        assert set(operation["responses"]) == codes, (path, method)
        for code in codes - {"200", "201", "204"}:
            content = operation["responses"][code]["content"]["application/json"]["schema"]
            assert content["$ref"].endswith("/ErrorResponse"), (path, method, code)


def test_claim_request_is_documented(client):
    schema = client.get("/api/schema/?format=json", HTTP_ACCEPT="application/json").json()
    body = schema["components"]["schemas"]["ClaimStationRequestRequest"]
    assert set(body["required"]) >= {"certificate", "station", "nonce", "signature"}
    assert "ownerToken" in schema["components"]["securitySchemes"]


def test_415_and_bad_tokens_are_real(client, db):
    response = client.post("/api/claim-station", "x=1", content_type="text/plain")
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"
    response = client.get("/api/certificates", HTTP_AUTHORIZATION="Bearer mso_forged")
    assert response.status_code == 401
    assert client.get("/api/trust-roots?page=7").status_code == 404
    assert client.get("/api/station-credential").status_code == 409
