"""What a CONTENT_ENTRIES pull carries: the signed entries asked for and their origin
stations' credentials, except those the asking station names as known (kilobytes each,
minutes on the air); a malformed list of known origins is refused with a reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from catalog import selectors
from catalog.sync import MAX_KNOWN_ORIGINS, entries_payload, on_content_entries
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
