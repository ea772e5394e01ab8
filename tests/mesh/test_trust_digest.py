"""meshd reads `selectors.trust_digest` every second and syncs every link when it changes: it
must change with the certificates the mesh exchanges and the blacklist, and only then."""

from __future__ import annotations

import pytest

from certificates import services as cert_services
from mesh import selectors, trust
from tests.certificates import pki

pytestmark = pytest.mark.django_db


def test_the_trust_digest_follows_the_certificates_and_the_blacklist_only():
    root, user = pki.meshsite_chain("DL1DIG")
    cert_services.trustroot_add(certificate=root.pem)
    empty = selectors.trust_digest()
    assert selectors.trust_digest() == empty  # nothing changed: the same digest

    row, _ = cert_services.certificate_add(certificate=user.pem, chain=user.chain_pem)
    added = selectors.trust_digest()
    assert added != empty
    # The digest covers exactly what the links exchange (intermediate and peer, not the root).
    assert sorted(trust.certificate_fingerprints_for_sync()) == sorted(
        trust.certificates_for_sync())
    assert len(trust.certificate_fingerprints_for_sync()) == 2

    cert_services.certificate_blacklist(fingerprint=row.fingerprint, reason="key lost")
    assert selectors.trust_digest() not in (empty, added)
    cert_services.blacklist_lift(fingerprint=row.fingerprint)
    assert selectors.trust_digest() == added
