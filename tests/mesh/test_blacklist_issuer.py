"""A blacklist entry from a station we do not trust applies only when that station's owner
certificate really issued the blacklisted certificate (issuer name and signature), and the
credential is the signer's own; anything else stays a report, with the reason logged."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives import hashes

from certificates.models import BlacklistEntry, Certificate
from mesh import protocol, services
from mesh.models import MeshBlacklistEntry
from tests.certificates import pki
from tests.mesh.stations import FakeStation

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_hierarchy():
    """A root this station does not trust, its CA (DL0XX) and trudy, issued by that CA."""
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0XX", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    trudy = pki.issue(ca, callsign="DL2TRU")
    return root, ca, trudy


def _known_here(identity: pki.Identity) -> str:
    """The certificate as this station holds it (heard of, not trusted: its root is not ours)."""
    cert = identity.cert
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    Certificate.objects.create(
        fingerprint=fingerprint, serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        callsign="DL2TRU", not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc, pem=identity.pem, trust_level="peer",
        state="pending", source="mesh")
    return fingerprint


def _entry(station: FakeStation, fingerprint: str, *, signer: str | None = None) -> dict:
    signer = signer or station.station_id
    timestamp = protocol.now_ms()
    message = services.blacklist_entry_message(fingerprint=fingerprint, reason="key stolen",
                                               timestamp=timestamp, signer=signer)
    return {"fingerprint": fingerprint, "reason": "key stolen", "timestamp": timestamp,
            "signer": signer, "credential": station.credential,
            "signature": protocol.b64encode(station.key.sign(message))}


def _effective(fingerprint: str) -> bool:
    return BlacklistEntry.objects.filter(fingerprint=fingerprint, effective=True).exists()


def test_the_real_issuer_blacklists_what_it_issued(other_hierarchy):
    _, ca, trudy = other_hierarchy
    fingerprint = _known_here(trudy)
    issuer_station = FakeStation.make(ca, "DL0XX")
    record = services.blacklist_entry_receive(entry=_entry(issuer_station, fingerprint),
                                              received_from="neighbour")
    assert record.status == MeshBlacklistEntry.Status.APPLIED
    assert "issuer" in record.status_detail
    assert _effective(fingerprint)


def test_a_forged_issuer_with_the_same_name_stays_a_report(other_hierarchy, caplog):
    _, ca, trudy = other_hierarchy
    fingerprint = _known_here(trudy)
    # mallory makes a CA certificate with the real CA's name but a key of her own
    forged_key = pki.ed_key()
    forged_cert = pki.make_cert(subject=ca.cert.subject, key=forged_key, ca=True,
                                key_usage=pki.ca_usage())
    forged = pki.Identity(forged_cert, forged_key)
    with caplog.at_level(logging.INFO, logger="mesh.services"):
        record = services.blacklist_entry_receive(
            entry=_entry(FakeStation.make(forged, "DL0XX"), fingerprint),
            received_from="neighbour")
    assert record.status == MeshBlacklistEntry.Status.REPORT
    assert "did not issue" in record.status_detail
    assert not _effective(fingerprint)
    assert any("neither trusted nor the issuer" in r.getMessage() for r in caplog.records)


def test_the_issuers_credential_under_another_signer_stays_a_report(other_hierarchy):
    """The entry is signed with the issuer station's key but names another station as its
    signer: the credential does not belong to the signer, so it proves nothing."""
    _, ca, trudy = other_hierarchy
    fingerprint = _known_here(trudy)
    issuer_station = FakeStation.make(ca, "DL0XX")
    record = services.blacklist_entry_receive(
        entry=_entry(issuer_station, fingerprint, signer="f" * 32), received_from="neighbour")
    assert record.status == MeshBlacklistEntry.Status.REPORT
    assert "not the signer" in record.status_detail
    assert not _effective(fingerprint)


def test_an_unknown_certificate_cannot_be_blacklisted_by_an_untrusted_issuer(other_hierarchy):
    _, ca, trudy = other_hierarchy
    fingerprint = trudy.cert.fingerprint(hashes.SHA256()).hex()  # never stored here
    record = services.blacklist_entry_receive(
        entry=_entry(FakeStation.make(ca, "DL0XX"), fingerprint), received_from="neighbour")
    assert record.status == MeshBlacklistEntry.Status.REPORT
    assert "not known here" in record.status_detail
