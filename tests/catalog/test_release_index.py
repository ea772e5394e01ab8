"""The package index of the served release: download tokens from a license proof (RSA, ECDSA,
Ed25519), 401 without one, PEP 503 HTML and PEP 691 JSON by Accept, PEP 658 metadata, files
from the blob store; rate limits."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone

from catalog import release as rel
from catalog import releases
from tests.catalog.wheels import toy_wheel
from tests.certificates import pki
from tests.certificates.conftest import bob, carol, mesh_pki

pytestmark = pytest.mark.django_db
__all__ = ["bob", "carol", "mesh_pki"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def served(owner_token, tmp_path: Path) -> releases.VerifiedRelease:
    folder = tmp_path / "wheels"
    toy_wheel(folder, "meshsite", "0.2.0", requires=("toy-dep>=1",))
    toy_wheel(folder, "toy_dep", "1.2.0")
    return releases.release_publish(files=sorted(folder.glob("*.whl")),
                                    expires=timezone.now() + dt.timedelta(days=5))


def token_for(client, who: pki.Identity, *, signer: pki.Identity | None = None):
    response = client.post("/api/download-token/nonce")
    assert response.status_code == 200, response.content
    nonce = response.json()["nonce"]
    from certificates.selectors import station_get

    message = (f"meshsite-download-token-v1\nstation:{station_get().station_id}\n"
               f"nonce:{nonce}\n").encode()
    assert base64.b64decode(response.json()["message"]) == message
    return client.post("/api/download-token", {
        "certificate": who.pem, "chain": who.chain_pem, "nonce": nonce,
        "signature": (signer or who).sign(message)}, content_type="application/json")


def basic(callsign: str, token: str) -> dict[str, str]:
    raw = base64.b64encode(f"{callsign}:{token}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {raw}"}


def test_tokens_for_rsa_ecdsa_and_ed25519_licenses(client, alice, bob, carol):
    for who, callsign in ((alice, "W1AW"), (bob, "DL1BOB"), (carol, "G4CAR")):
        response = token_for(client, who)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["callsign"] == callsign and len(body["token"]) >= 32
        assert dt.datetime.fromisoformat(body["expires"]) > timezone.now()


def test_token_refusals_carry_the_claims_codes(client, alice, bob):
    assert token_for(client, alice, signer=bob).json()["error"] == "bad_proof"
    _stranger_root, stranger = pki.meshsite_chain("K1XYZ", "ed25519")
    assert token_for(client, stranger).json()["error"] == "untrusted_root"
    response = client.post("/api/download-token", {
        "certificate": alice.pem, "chain": alice.chain_pem, "nonce": "x" * 30,
        "signature": "AAAA"}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "bad_nonce"
    response = client.post("/api/download-token", {"nonce": "x"},
                           content_type="application/json")
    assert response.status_code == 400 and "certificate" in response.json()["detail"]


def test_without_a_token_the_index_says_how_to_get_one(client, served, alice):
    first = served.manifest["files"][0]["name"]
    for path in ("/simple/", "/simple/meshsite/", f"/packages/{first}"):
        response = client.get(path)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Basic")
        assert "POST /api/download-token" in response.content.decode()
    token = token_for(client, alice).json()["token"]
    assert client.get("/simple/", **basic("W1AW", "wrong")).status_code == 401
    response = client.get("/simple/", **basic("DL1BOB", token))
    assert response.status_code == 401 and "another callsign" in response.content.decode()


def test_index_html_json_metadata_and_files(client, served, alice):
    auth = basic("W1AW", token_for(client, alice).json()["token"])
    response = client.get("/simple/", **auth)
    assert response.status_code == 200 and response["Vary"] == "Accept"
    assert response["Content-Type"].startswith("text/html")
    assert '<a href="/simple/meshsite/">' in response.content.decode()
    response = client.get("/simple/", HTTP_ACCEPT=f"{JSON_V1}, text/html;q=0.1", **auth)
    assert response["Content-Type"] == JSON_V1
    assert response.json()["projects"] == [{"name": "meshsite"}, {"name": "toy-dep"}]
    assert client.get("/simple/", HTTP_ACCEPT="image/png", **auth).status_code == 406
    assert client.get("/simple/Toy_Dep/", **auth)["Location"] == "/simple/toy-dep/"

    page = client.get("/simple/toy-dep/", **auth).content.decode()
    item = next(f for f in served.manifest["files"] if f["project"] == "toy-dep")
    link = re.search(r'<a href="([^"]+)"([^>]*)>', page)
    assert link.group(1) == f"/packages/{item['name']}#sha256={item['sha256']}"
    assert f'data-dist-info-metadata="sha256={item["metadata"]["sha256"]}"' in link.group(2)
    assert 'data-requires-python="&gt;=3.11"' in link.group(2)

    data = client.get("/simple/toy-dep/", HTTP_ACCEPT=JSON_V1, **auth).json()
    assert data["name"] == "toy-dep" and data["versions"] == ["1.2.0"]
    [entry] = data["files"]
    assert entry["hashes"] == {"sha256": item["sha256"]} and entry["size"] == item["size"]
    assert entry["core-metadata"] == {"sha256": item["metadata"]["sha256"]}

    body = b"".join(client.get(f"/packages/{item['name']}", **auth).streaming_content)
    assert hashlib.sha256(body).hexdigest() == item["sha256"]
    metadata = b"".join(client.get(f"/packages/{item['name']}.metadata",
                                   **auth).streaming_content)
    assert hashlib.sha256(metadata).hexdigest() == item["metadata"]["sha256"]
    assert b"Name: toy_dep" in metadata or b"Name: toy-dep" in metadata
    assert client.get("/packages/nothing-1.0-py3-none-any.whl", **auth).status_code == 404
    assert client.get("/simple/nothing/", **auth).status_code == 404


def test_release_document_installer_and_page(client, served):
    response = client.get("/get/release.json")
    assert response.status_code == 200 and response.content == served.raw
    installer = client.get("/get/meshsite-install.py")
    digest = hashlib.sha256(installer.content).hexdigest()
    assert installer["X-Meshsite-SHA256"] == digest
    page = client.get("/get/").content.decode()
    assert digest in page and "0.2.0" in page and "W1AW" in page
    # the PWA page: the release's counter, builder and platforms, each complete (toy wheels)
    assert 'id="release-platforms"' in page and "Linux x86_64" in page
    assert f'id="release-counter">{served.manifest["counter"]}<' in page
    assert 'id="release-builder">W1AW<' in page and ">complete<" in page
    assert "BEGIN CERTIFICATE" in client.get("/get/trust-roots.pem").content.decode()


def test_no_release_is_a_clear_404(client, owner_token):
    response = client.get("/get/release.json")
    assert response.status_code == 404 and response.json()["error"] == "no_release"


@override_settings(DOWNLOAD_TOKEN_RATE=3)
def test_token_requests_are_rate_limited(client, alice):
    codes = [client.post("/api/download-token/nonce").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.post("/api/download-token/nonce")
    assert response.json()["error"] == "rate_limited" and int(response["Retry-After"]) >= 1


@override_settings(INDEX_RATE=2)
def test_index_requests_are_rate_limited_per_token(client, served, alice):
    auth = basic("W1AW", token_for(client, alice).json()["token"])
    codes = [client.get("/simple/", **auth).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_expired_release_is_not_served(client, owner_token, tmp_path):
    folder = tmp_path / "w"
    toy_wheel(folder, "meshsite", "0.3.0")
    release = releases.release_publish(files=list(folder.glob("*.whl")),
                                       expires=timezone.now() + dt.timedelta(seconds=2))
    assert release.manifest["format"] == rel.FORMAT
    from tests.mesh.stations import wait_for

    wait_for(lambda: client.get("/get/release.json").status_code == 404, 10,
             "the release expires")
    assert "expired" in client.get("/get/release.json").json()["detail"]
