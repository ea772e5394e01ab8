"""The station key file, station id, nonces, and checking other stations' credentials."""

from __future__ import annotations

import base64
import hashlib
import stat
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from certificates import keyfile, services
from certificates.errors import CertificateError
from certificates.selectors import station_get
from tests.certificates import pki
from tests.certificates.conftest import claim_body

pytestmark = pytest.mark.django_db


def test_key_file_is_0600_raw_and_never_overwritten(tmp_path):
    path = tmp_path / "k" / "station.key"
    keys = []

    def make() -> None:
        keys.append(keyfile.load_or_create_ed25519(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    raw = {k.public_key().public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw) for k in keys}
    assert len(raw) == 1  # everyone ended with the same key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    before = path.read_bytes()
    assert keyfile.write_new_secret_file(path, b"x" * 32) is False
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["station.key"]  # no temp files left


def test_corrupt_key_file_is_a_clear_error(tmp_path):
    path = tmp_path / "station.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32-byte"):
        keyfile.load_or_create_ed25519(path)


def test_station_id_belongs_to_the_key(settings):
    station = station_get()
    raw = base64.b64decode(station.public_key)
    assert station.station_id == hashlib.sha256(raw).hexdigest()[:32]
    assert stat.S_IMODE(settings.MESHSITE_STATION_KEY_FILE.stat().st_mode) == 0o600
    signature = services.station_sign(b"hello mesh")
    services.station_public_verify(public_key_b64=station.public_key, signature=signature,
                                   message=b"hello mesh")
    with pytest.raises(CertificateError) as excinfo:
        services.station_public_verify(public_key_b64=station.public_key, signature=signature,
                                       message=b"hello mesh!")
    assert excinfo.value.code == "bad_proof"


def test_nonces_are_single_use_and_scoped():
    nonce = services.nonce_issue(purpose="mesh-auth")
    assert services.nonce_consume(purpose="signal-register", nonce=nonce) is False
    assert services.nonce_consume(purpose="mesh-auth", nonce=nonce) is True
    assert services.nonce_consume(purpose="mesh-auth", nonce=nonce) is False
    assert services.nonce_consume(purpose="mesh-auth", nonce="../../etc") is False
    with pytest.raises(ValueError):
        services.nonce_issue(purpose="Bad Purpose!")


def test_nonce_expires():
    from meshsite.redisconn import get_redis

    nonce = services.nonce_issue(purpose="claim", ttl=30)
    ttl = get_redis().ttl(f"certificates:nonce:claim:{nonce}")
    assert 0 < ttl <= 30
    get_redis().delete(f"certificates:nonce:claim:{nonce}")  # what expiry does
    assert services.nonce_consume(purpose="claim", nonce=nonce) is False


def test_concurrent_consume_has_one_winner():
    nonce = services.nonce_issue(purpose="claim")
    results = []
    barrier = threading.Barrier(10)

    def consume() -> None:
        barrier.wait()
        results.append(services.nonce_consume(purpose="claim", nonce=nonce))

    threads = [threading.Thread(target=consume) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 9 + [True]


def test_unclaimed_station_has_no_credential():
    assert services.station_credential() is None


@pytest.fixture
def credential(client, bob) -> dict:
    response = client.post("/api/claim-station", claim_body(client, bob),
                           content_type="application/json")
    assert response.status_code == 200
    return services.station_credential()


@pytest.mark.parametrize("change, code", [
    ({"stationId": "0" * 32}, "bad_credential"),
    ({"publicKey": "not base64"}, "bad_credential"),
    ({"callsign": "W1AW"}, "callsign_mismatch"),
    ({"nonce": "another-nonce-value"}, "bad_proof"),
    ({"delegation": base64.b64encode(b"\0" * 64).decode()}, "bad_proof"),
    ({"certificate": "garbage"}, "malformed"),
    ({"chain": "nope"}, "bad_credential"),
    ({"stationId": None}, "bad_credential"),
])
def test_credential_tampering_is_refused(credential, change, code):
    with pytest.raises(CertificateError) as excinfo:
        services.station_credential_verify({**credential, **change})
    assert excinfo.value.code == code


def test_credential_of_a_station_whose_root_we_do_not_trust(credential):
    from certificates.models import Certificate

    Certificate.objects.filter(trust_level="root").delete()
    with pytest.raises(CertificateError) as excinfo:
        services.station_credential_verify(credential)
    assert excinfo.value.code == "untrusted_root"


def test_credential_with_another_stations_key_is_refused(credential):
    other = pki.ed_key()
    raw = other.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)
    forged = {**credential, "publicKey": base64.b64encode(raw).decode(),
              "stationId": hashlib.sha256(raw).hexdigest()[:32]}
    with pytest.raises(CertificateError) as excinfo:
        services.station_credential_verify(forged)
    assert excinfo.value.code == "bad_proof"


def test_credential_of_a_blacklisted_owner(credential, bob):
    services.certificate_blacklist(fingerprint=pki.fingerprint(bob.cert), reason="revoked")
    with pytest.raises(CertificateError) as excinfo:
        services.station_credential_verify(credential)
    assert excinfo.value.code == "blacklisted"
    assert services.station_credential_verify.__doc__


def test_not_a_dict():
    with pytest.raises(CertificateError) as excinfo:
        services.station_credential_verify(["x"])  # type: ignore[arg-type]
    assert excinfo.value.code == "bad_credential"
