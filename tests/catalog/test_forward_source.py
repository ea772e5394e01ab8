"""What a hop of a forwarded content request reads (`catalog.forward`), through
`meshsite.hotread`: the same answers as the ORM gives, clear errors for what is not there, and
nothing served of a deleted or evicted body."""

from __future__ import annotations

import pytest

from catalog import services
from catalog.forward import ContentSource
from catalog.models import ContentEntry
from mesh import selectors
from mesh import services as mesh_services
from mesh.models import Route
from mesh.registry import MeshHandlerError
from meshsite import hotread

pytestmark = pytest.mark.django_db
BODY = bytes(range(256)) * 40


def published(client, token: str, path: str = "notes/a.bin") -> ContentEntry:
    response = client.post(f"/api/content-catalog?path={path}&priority=3", BODY,
                           content_type="application/octet-stream",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201, response.content
    return ContentEntry.objects.get(entry_id=response.json()["entryId"])


def test_a_held_body_is_described_and_read_in_pieces(client, owner_token):
    entry = published(client, owner_token)
    source = ContentSource()
    assert source.describe({"entry": entry.entry_id}) == {
        "size": len(BODY), "contentHash": entry.content_hash, "entry": entry.entry_id}
    assert source.read({"entry": entry.entry_id}, 0, 100) == BODY[:100]
    assert source.read({"entry": entry.entry_id}, 10_000, 5_000) == BODY[10_000:]


def test_the_row_read_matches_the_orm_booleans_included(client, owner_token):
    entry = published(client, owner_token)
    columns = ("entry_id", "deleted", "has_body", "content_hash", "size", "priority")
    found = hotread.row(ContentEntry, columns, "entry_id", entry.entry_id)
    assert found == tuple(getattr(entry, name) for name in columns)
    assert found[1] is False and found[2] is True  # bools, not SQLite's 0 and 1
    assert hotread.row(ContentEntry, columns, "entry_id", "0" * 64) is None


def test_a_deleted_or_evicted_body_is_not_offered(client, owner_token):
    entry = published(client, owner_token)
    source = ContentSource()
    services.blob_store().delete(entry.content_hash)
    assert source.describe({"entry": entry.entry_id}) is None
    with pytest.raises(MeshHandlerError) as err:
        source.read({"entry": entry.entry_id}, 0, 10)
    assert err.value.code == "gone"
    tombstone = services.content_delete(path=entry.path)
    assert source.describe({"entry": tombstone.entry_id}) is None


@pytest.mark.parametrize("request_, code", [
    ({}, "malformed"), ({"entry": "ZZ" * 32}, "malformed"), ({"entry": 7}, "malformed"),
    ({"entry": "ab" * 32}, "unknown_entry"),
])
def test_bad_or_unknown_entries_are_named(request_, code):
    with pytest.raises(MeshHandlerError) as err:
        ContentSource().describe(request_)
    assert err.value.code == code


def test_the_next_hop_read_matches_the_stored_route():
    me, far, near = "a1" * 16, "b2" * 16, "c3" * 16
    from django.utils import timezone

    row = {"destination": far, "callsign": "W1FAR", "next_hop": near,
           "next_hop_callsign": "W1NR", "cost": 192, "hops": 2, "seqno": 7,
           "refreshed_at": timezone.now(), "lan_next_hop": "", "lan_cost": None,
           "lan_hops": None}
    mesh_services.routes_store([row], self_station_id=me)
    assert selectors.next_hop_to(far) == selectors.NextHop(near, 2, 192, "", None)
    mesh_services.routes_store([{**row, "lan_next_hop": near, "lan_cost": 200, "lan_hops": 3}],
                               self_station_id=me)
    assert selectors.next_hop_to(far) == selectors.NextHop(near, 2, 192, near, 3)
    assert selectors.next_hop_to(near) is None


@pytest.mark.parametrize("model, columns, key, says", [
    (ContentEntry, ("size",), "path", "is not unique"),
    (ContentEntry, ("created_at",), "entry_id", "DateTimeField"),
    (Route, ("refreshed_at",), "destination", "DateTimeField"),
])
def test_rows_it_cannot_read_are_refused_by_name(model, columns, key, says):
    with pytest.raises(ValueError, match=says):
        hotread.row(model, columns, key, "x")
