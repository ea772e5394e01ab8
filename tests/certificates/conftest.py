"""Personas and trust setups: alice owns the station (LoTW W1AW), bob holds a Meshsite
certificate (DL1BOB, Ed25519), carol an EC one, mallory attacks."""

from __future__ import annotations

import base64

import pytest

from certificates import services
from tests.certificates import pki


@pytest.fixture
def lotw_trusted(db):
    """The LoTW root is a trust root of this station."""
    services.trustroot_add(certificate=pki.lotw_root().cert)
    return pki.lotw_root()


@pytest.fixture
def alice(lotw_trusted) -> pki.Identity:
    return pki.lotw_user("W1AW")


@pytest.fixture
def mesh_pki(db):
    """A Meshsite root (Ed25519) trusted here, with an intermediate that may issue."""
    root, bob = pki.meshsite_chain("DL1BOB", "ed25519")
    services.trustroot_add(certificate=root.cert)
    return root, bob


@pytest.fixture
def bob(mesh_pki) -> pki.Identity:
    return mesh_pki[1]


@pytest.fixture
def carol(db) -> pki.Identity:
    root, carol = pki.meshsite_chain("G4CAR", "ec")
    services.trustroot_add(certificate=root.cert)
    return carol


def claim_body(client, who: pki.Identity, callsign: str | None = None, *, nonce: str | None = None,
               signer: pki.Identity | None = None, metadata: dict | None = None) -> dict:
    """Fetch a nonce from the API and build a signed claim body."""
    if nonce is None:
        response = client.post("/api/claim-station/nonce")
        assert response.status_code == 200, response.content
        nonce = response.json()["nonce"]
        message = base64.b64decode(response.json()["message"])
    else:
        message = services.claim_message(nonce)
    from certificates.x509tools import read_license

    return {
        "certificate": who.pem,
        "chain": who.chain_pem,
        "station": {"callsign": callsign or read_license(who.cert).callsign,
                    "metadata": metadata or {"location": "FN31pr"}},
        "nonce": nonce,
        "signature": (signer or who).sign(message),
    }
