"""Gossiped home records are believed only when every signature checks: the home station's over
the record, its credential, and the operator's own registration there (their license key over
that station's id). Newer records replace older ones; anything else is refused, named in the
log, and changes nothing. In-process (and on PostgreSQL)."""

from __future__ import annotations

import base64
import copy
import secrets

import pytest

from certificates import services as cert_services
from mesh import protocol
from signaling import mailbox, mailbox_mesh
from signaling.models import MailboxHome
from tests.certificates import pki
from tests.mesh.stations import FakeStation

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    root = pki.meshsite_root("ed25519")
    cert_services.trustroot_add(certificate=root.cert)
    owner = pki.issue(root, callsign="DL0HOM")
    home = FakeStation.make(owner, "DL0HOM")
    bob = pki.issue(root, callsign="DL1BOB")
    return root, home, bob


def record(home: FakeStation, who: pki.Identity, callsign: str, issued: int,
           station_for_proof: str | None = None) -> dict:
    nonce = secrets.token_urlsafe(16)
    proof = {"certificate": who.pem, "chain": who.chain_pem, "nonce": nonce,
             "signature": who.sign(mailbox.device_message(
                 station_id=station_for_proof or home.station_id, nonce=nonce))}
    body = mailbox_mesh._home_body(callsign, home.station_id, issued, proof)
    return {"callsign": callsign, "stationId": home.station_id, "issuedAt": issued,
            "proof": proof, "credential": home.credential,
            "signature": base64.b64encode(home.key.sign(body)).decode()}


def test_a_signed_record_is_stored_and_newer_ones_win(world) -> None:
    _root, home, bob = world
    now = protocol.now_ms()
    assert mailbox_mesh.homes_import([record(home, bob, "DL1BOB", now - 1000)]) == 1
    assert MailboxHome.objects.get(callsign="DL1BOB").station_id == home.station_id
    assert mailbox_mesh.home_of("DL1BOB") == home.station_id
    assert mailbox_mesh.homes_import([record(home, bob, "DL1BOB", now - 2000)]) == 0  # older
    assert mailbox_mesh.homes_import([record(home, bob, "DL1BOB", now)]) == 1
    assert MailboxHome.objects.get(callsign="DL1BOB").issued_at == now
    records, want = mailbox_mesh.homes_newer_than({"DL1BOB": now - 5, "G4CAR": 7})
    assert [r["callsign"] for r in records] == ["DL1BOB"] and want == ["G4CAR"]


def test_forged_records_are_refused(world, caplog) -> None:
    root, home, bob = world
    now = protocol.now_ms()
    other = FakeStation.make(pki.issue(root, callsign="DL0OTH"), "DL0OTH")
    mallory = pki.issue(pki.meshsite_root("ed25519"), callsign="DL1BOB")  # untrusted root
    tampered = record(home, bob, "DL1BOB", now)
    tampered["issuedAt"] += 1  # not what the station signed
    stolen = record(home, bob, "DL1BOB", now)
    stolen["stationId"] = other.station_id  # another station claims the record
    bad_sig = record(home, bob, "DL1BOB", now)
    bad_sig["signature"] = base64.b64encode(b"\0" * 64).decode()
    future = record(home, bob, "DL1BOB", now + 3600_000)
    no_credential = copy.deepcopy(record(home, bob, "DL1BOB", now))
    no_credential["credential"] = {}
    forged = [
        tampered, stolen, bad_sig, future, no_credential,
        # Bob registered at another station, not at this home: the proof names that one.
        record(home, bob, "DL1BOB", now, station_for_proof=other.station_id),
        record(home, mallory, "DL1BOB", now),  # a license that chains to no trusted root
        record(home, bob, "G4CAR", now),  # Bob's proof for someone else's callsign
        "not a record", {"callsign": "DL1BOB"},
    ]
    assert mailbox_mesh.homes_import(forged) == 0
    assert not MailboxHome.objects.exists()
    assert "mailbox home refused" in caplog.text
