"""What a CONTENT_ENTRIES pull carries: the signed entries asked for and their origin
stations' credentials, except those the asking station names as known (kilobytes each,
minutes on the air); a malformed list of known origins is refused with a reason. A push over
RF leaves our own credential out (the RF neighbour verified it before it took our message);
over a LAN link it goes along."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from catalog import selectors
from catalog.reconcile import Catalog, Reconciler
from catalog.sync import (
    CONTENT_ENTRIES,
    CONTENT_SYNC,
    MAX_KNOWN_ORIGINS,
    _b64,
    _reconcile_message,
    catalog_link_sync,
    entries_payload,
    on_content_entries,
)
from certificates.services import station_credential
from mesh.registry import MeshHandlerError
from tests.catalog.test_content_api import publish

pytestmark = pytest.mark.django_db


def test_origins_named_as_known_are_left_out(client, owner_token) -> None:
    entry = publish(client, owner_token, "notices/water.html", b"<p>water at noon</p>").json()
    own = station_credential()["stationId"]
    full = entries_payload([entry["entryId"]])
    assert [e["entryId"] for e in full["entries"]] == [entry["entryId"]]
    assert [o["stationId"] for o in full["origins"]] == [own]
    lean = entries_payload([entry["entryId"]], frozenset({own}))
    assert lean["entries"] == full["entries"] and lean["origins"] == []
    assert entries_payload([entry["entryId"]], frozenset({"f" * 32}))["origins"] == full["origins"]


def test_known_origins_are_named_only_while_few(monkeypatch) -> None:
    from catalog.models import OriginStation

    for index in range(3):
        OriginStation.objects.create(station_id=f"{index:032x}", callsign=f"DL{index}A",
                                     public_key="k", credential={"stationId": f"{index:032x}"})
    OriginStation.objects.create(station_id="e" * 32, callsign="DL9Z", public_key="k")
    assert selectors.known_origins(3) == [f"{index:032x}" for index in range(3)]
    assert selectors.known_origins(2) == []  # too many to name: the credentials come


@pytest.mark.parametrize("known", ["a" * 32, ["short"], [7], ["a" * 32] * (MAX_KNOWN_ORIGINS + 1)])
async def test_a_malformed_known_list_is_refused(known) -> None:
    link = SimpleNamespace(peer_station_id="b" * 32, peer_callsign="DL2B")
    with pytest.raises(MeshHandlerError, match="known must be a list"):
        await on_content_entries(link, {"want": ["c" * 64], "known": known})


def test_a_credential_verified_by_the_mesh_becomes_a_known_origin(client, owner_token) -> None:
    from mesh import registry

    credential = station_credential()
    registry.credential_verified({**credential, "publicKey": "not a key"})  # refused, logged
    assert selectors.known_origins(10) == []
    registry.credential_verified(credential)
    assert selectors.known_origins(10) == [credential["stationId"]]


class _EmptyPeer:
    """The far end of a link holding an empty catalog: it answers reconciliation, takes what
    is pushed and keeps each CONTENT_ENTRIES payload."""

    def __init__(self, kind: str, own: str) -> None:
        self.kind = kind
        self.local = SimpleNamespace(station_id=own)
        self.peer_station_id = "b" * 32
        self.peer_callsign = "DL2B"
        self.responder = Reconciler(Catalog(), max_message_size=4096)
        self.pushed: list[dict] = []

    async def request(self, type_: str, payload: dict, timeout: float = 10.0) -> dict:
        if type_ == CONTENT_SYNC:
            reply = self.responder.reconcile(_reconcile_message(payload))
            return {"m": _b64(reply) if reply is not None else ""}
        if type_ == CONTENT_ENTRIES:
            self.pushed.append(payload)
            return {"stored": len(payload["entries"])}
        return {"demand": {}}


@pytest.mark.parametrize(("kind", "with_credential"), [("rf", False), ("lan", True)])
@pytest.mark.django_db(transaction=True)
async def test_a_push_over_rf_leaves_our_own_credential_out(kind, with_credential,
                                                             client, owner_token) -> None:
    from asgiref.sync import sync_to_async

    entry = (await sync_to_async(publish)(client, owner_token, "notices/fuel.html",
                                          b"<p>fuel at the depot</p>")).json()
    own = (await sync_to_async(station_credential)())["stationId"]
    peer = _EmptyPeer(kind, own)
    counts = await catalog_link_sync(peer)
    assert counts["pushed"] == 1, counts
    [payload] = peer.pushed
    assert [e["entryId"] for e in payload["entries"]] == [entry["entryId"]]
    assert [o["stationId"] for o in payload["origins"]] == ([own] if with_credential else [])
