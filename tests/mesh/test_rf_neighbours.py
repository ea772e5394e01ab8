"""The RF neighbour link on its own: credentials verified on the air are kept across a restart
(by station id and fingerprint), and an RF link session never hands the air anything marked
encrypted or any LAN/IP-only (mailbox) message: the real RF link layer's queue stays empty."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mesh import ax25, rf_codec, trust
from mesh.rf_link import RfLink
from mesh.rf_neighbours import CredentialStore, RfLinkSession


def test_credentials_are_kept_across_a_restart(tmp_path) -> None:
    path = tmp_path / "rf-credentials.json"
    CredentialStore(path).put("a" * 32, "f1" * 32, {"stationId": "a" * 32, "callsign": "DL1A"})
    again = CredentialStore(path)  # a restarted meshd
    assert again.get("a" * 32) == {"stationId": "a" * 32, "callsign": "DL1A"}
    assert again.get("a" * 32, "f1" * 32) is not None
    assert again.get("a" * 32, "f2" * 32) is None  # another owner certificate: ask again
    again.forget("a" * 32)
    assert CredentialStore(path).get("a" * 32) is None


def test_a_damaged_store_is_ignored(tmp_path) -> None:
    path = tmp_path / "rf-credentials.json"
    path.write_text("{not json")
    assert CredentialStore(path).items == {}


async def _nothing(_frame: bytes) -> None:
    return None


@pytest.mark.django_db
async def test_encrypted_and_mailbox_messages_never_reach_the_air() -> None:
    me = ax25.Address("DL1A", 10)
    rf = RfLink(send_frame=_nothing, identity=lambda: me, bitrate=1200, share=0.1,
                id_interval=600, beacon_body=lambda: b"")
    local = trust.LocalStation("a" * 32, "DL1A", "f1" * 32, {"stationId": "a" * 32})
    peer = trust.ProvenStation("b" * 32, "DL2B", "f2" * 32, "")
    session = RfLinkSession(neighbours=SimpleNamespace(radio=SimpleNamespace(rf=rf)),
                            local=local, peer=peer, address=ax25.Address("DL2B", 10))
    with pytest.raises(rf_codec.EncryptedRefused):
        await session.send("CONTENT_ENTRIES", {"entries": [{"body": {"ciphertext": "x"}}]})
    with pytest.raises(rf_codec.RfCodecError, match="never sent on the air"):
        await session.send("MAILBOX_HOMES", {"summary": {}})
    assert not rf.urgent and not rf.background
    await session.send("CONTENT_DEMAND", {"demand": {}})  # plain sync traffic does go
    assert len(rf.background) == 1 and not rf.urgent
