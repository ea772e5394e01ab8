"""Console: claimstation (cert+key, p12, refusals, token rotation, handover), trustroot,
ownerpassword."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from certificates.models import Certificate, OwnerToken, StationState
from certificates.selectors import station_get
from tests.certificates import pki

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def files_for(tmp_path, who: pki.Identity, stem: str) -> tuple[str, str, str]:
    cert = tmp_path / f"{stem}.pem"
    key = tmp_path / f"{stem}.key"
    chain = tmp_path / f"{stem}-chain.pem"
    cert.write_text(who.pem)
    key.write_bytes(pki.private_pem(who.key))
    chain.write_text("".join(who.chain_pem))
    return str(cert), str(key), str(chain)


def test_console_claim_with_cert_and_key(tmp_path, alice):
    cert, key, chain = files_for(tmp_path, alice, "alice")
    out = json.loads(run("claimstation", "--cert", cert, "--key", key, "--chain", chain,
                         "--json"))
    assert out["owner"] == "W1AW" and out["accessToken"].startswith("mso_")
    station = station_get()
    assert station.state == StationState.CLAIMED and station.owner_callsign == "W1AW"
    client = Client()
    assert client.login(username="W1AW", password=out["adminPassword"])
    assert client.get("/admin/").status_code == 200


def test_console_claim_with_p12(tmp_path, bob):
    blob = pkcs12.serialize_key_and_certificates(
        b"TrustedQSL user certificate", bob.key, bob.cert, bob.chain,
        serialization.BestAvailableEncryption(b"pw"))
    (tmp_path / "bob.p12").write_bytes(blob)
    (tmp_path / "pw").write_text("pw\n")
    out = run("claimstation", "--p12", str(tmp_path / "bob.p12"), "--password-file",
              str(tmp_path / "pw"))
    assert "Claimed station" in out and "DL1BOB" in out


def test_p12_with_wrong_password_exits_with_code(tmp_path, bob):
    blob = pkcs12.serialize_key_and_certificates(
        b"x", bob.key, bob.cert, bob.chain, serialization.BestAvailableEncryption(b"pw"))
    (tmp_path / "bob.p12").write_bytes(blob)
    (tmp_path / "pw").write_text("wrong\n")
    with pytest.raises(CommandError, match="bad_password") as excinfo:
        run("claimstation", "--p12", str(tmp_path / "bob.p12"), "--password-file",
            str(tmp_path / "pw"))
    assert excinfo.value.returncode == 2


def test_console_refusals_name_the_code(tmp_path, alice):
    cert, _, chain = files_for(tmp_path, alice, "alice")
    _, wrong_key, _ = files_for(tmp_path, pki.lotw_user("N0MAL"), "mallory")
    with pytest.raises(CommandError, match="bad_proof"):
        run("claimstation", "--cert", cert, "--key", wrong_key, "--chain", chain)
    with pytest.raises(CommandError, match="callsign_mismatch"):
        _, key, _ = files_for(tmp_path, alice, "alice")
        run("claimstation", "--cert", cert, "--key", key, "--chain", chain, "--callsign", "K1ZZ")
    assert station_get().state == StationState.UNCLAIMED


def test_rotate_token_and_handover(tmp_path, alice, bob):
    cert, key, chain = files_for(tmp_path, alice, "alice")
    first = json.loads(run("claimstation", "--cert", cert, "--key", key, "--chain", chain,
                           "--json"))
    with pytest.raises(CommandError, match="already_claimed"):
        run("claimstation", "--cert", cert, "--key", key, "--chain", chain)
    rotated = json.loads(run("claimstation", "--rotate-token", "--json"))
    assert rotated["accessToken"] != first["accessToken"]
    client = Client()
    old = client.post("/api/owner-token/rotate",
                      HTTP_AUTHORIZATION=f"Bearer {first['accessToken']}")
    assert old.status_code == 401
    assert OwnerToken.objects.filter(revoked_at__isnull=True).count() == 1
    bob_cert, bob_key, bob_chain = files_for(tmp_path, bob, "bob")
    handed = json.loads(run("claimstation", "--handover", "--cert", bob_cert, "--key", bob_key,
                            "--chain", bob_chain, "--json"))
    assert handed["owner"] == "DL1BOB"
    station = station_get()
    assert station.owner_callsign == "DL1BOB"
    assert client.post("/api/owner-token/rotate",
                       HTTP_AUTHORIZATION=f"Bearer {rotated['accessToken']}").status_code == 401
    assert client.post("/api/owner-token/rotate",
                       HTTP_AUTHORIZATION=f"Bearer {handed['accessToken']}").status_code == 200
    assert get_user_model().objects.get(username="W1AW").is_active is False
    assert client.get("/api/status").json()["owner"] == "DL1BOB"


def test_rotate_before_claim_fails(db):
    with pytest.raises(CommandError, match="not_claimed"):
        run("claimstation", "--rotate-token")


def test_ownerpassword(tmp_path, alice):
    cert, key, chain = files_for(tmp_path, alice, "alice")
    run("claimstation", "--cert", cert, "--key", key, "--chain", chain)
    out = run("ownerpassword")
    password = out.strip().split()[-1]
    assert Client().login(username="W1AW", password=password)


def test_trustroot_add_list_remove(tmp_path, db):
    root = pki.meshsite_root("ec")
    (tmp_path / "root.pem").write_text(root.pem)
    out = run("trustroot", "add", str(tmp_path / "root.pem"))
    fp = pki.fingerprint(root.cert)
    assert f"Added {fp}" in out
    assert "Already trusted" in run("trustroot", "add", str(tmp_path / "root.pem"))
    assert fp in run("trustroot", "list")
    assert "Removed" in run("trustroot", "remove", fp)
    assert fp not in run("trustroot", "list")
    assert Certificate.objects.get(fingerprint=fp).trust_level == "intermediate"
    with pytest.raises(CommandError):
        run("trustroot", "remove", fp)


def test_trustroot_add_from_tq6_and_refusals(tmp_path, db):
    from certificates.x509tools import gzip_tq6

    user = pki.lotw_user("W1AW")
    (tmp_path / "lotw.tq6").write_bytes(gzip_tq6(user.chain[1], [user.chain[0]], user.cert))
    out = run("trustroot", "add", str(tmp_path / "lotw.tq6"))
    assert pki.fingerprint(pki.lotw_root().cert) in out
    (tmp_path / "user.pem").write_text(user.pem)
    with pytest.raises(CommandError, match="untrusted_root"):
        run("trustroot", "add", str(tmp_path / "user.pem"))
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(CommandError, match="malformed"):
        run("trustroot", "add", str(tmp_path / "junk.pem"))


def test_trust_root_files_setting(tmp_path, settings, db):
    root, bob = pki.meshsite_chain("DL1BOB")
    (tmp_path / "roots.pem").write_text(root.pem)
    settings.MESHSITE_TRUST_ROOT_FILES = [str(tmp_path / "roots.pem")]
    from certificates import services

    verified = services.license_verify(certificate=bob.pem, chain=bob.chain_pem)
    assert verified.callsign == "DL1BOB"
    assert pki.fingerprint(root.cert) in run("trustroot", "list")
