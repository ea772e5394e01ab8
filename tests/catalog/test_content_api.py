"""Publishing, serving and the catalog API on one station: alice (W1AW) owns it, mallory has
no token. Bodies go through the real blob store in the test data dir."""

from __future__ import annotations

import base64
import io
import json

import pytest
from django.core.management import CommandError, call_command

from catalog import services
from catalog.models import ContentEntry, ContentReplica, PeerPenalty

pytestmark = pytest.mark.django_db


def auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def publish(client, token: str, path: str, body: bytes, priority: int = 3,
            content_type: str = "text/html; charset=utf-8"):
    return client.post(f"/api/content-catalog?path={path}&priority={priority}", body,
                       content_type=content_type, **auth(token))


def blob_files() -> list:
    root = services.blob_store().root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_publish_serve_and_radio_host(client, owner_token):
    body = b"<h1>Shelter at the school</h1>"
    response = publish(client, owner_token, "notices/shelter.html", body, priority=1)
    assert response.status_code == 201, response.content
    entry = response.json()
    assert entry["path"] == "notices/shelter.html" and entry["priority"] == 1
    assert entry["origin"] == "W1AW" and entry["hasBody"] and entry["current"]
    assert entry["replicas"][0]["callsign"] == "W1AW"

    served = client.get("/c/W1AW/notices/shelter.html")
    assert served.status_code == 200
    assert b"".join(served.streaming_content if served.streaming else [served.content]) == body
    assert served["Content-Type"] == "text/html; charset=utf-8"
    assert served["ETag"] == f'"{entry["hash"]}"'
    # The same through http://w1aw.radio/ (Host header) and in proxy (absolute) form.
    by_host = client.get("/notices/shelter.html", HTTP_HOST="w1aw.radio")
    assert by_host.status_code == 200 and by_host["ETag"] == served["ETag"]
    assert client.get("/c/w1aw/notices/shelter.html").status_code == 200


def test_conditional_and_range_requests(client, owner_token):
    body = bytes(range(256)) * 4
    entry = publish(client, owner_token, "data.bin", body,
                    content_type="application/octet-stream").json()
    etag = f'"{entry["hash"]}"'
    assert client.get("/c/W1AW/data.bin", HTTP_IF_NONE_MATCH=etag).status_code == 304
    part = client.get("/c/W1AW/data.bin", HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206
    assert b"".join(part.streaming_content if part.streaming else [part.content]) == body[10:20]
    assert part["Content-Range"] == f"bytes 10-19/{len(body)}"
    tail = client.get("/c/W1AW/data.bin", HTTP_RANGE="bytes=-4")
    assert b"".join(tail.streaming_content if tail.streaming else [tail.content]) == body[-4:]
    assert client.get("/c/W1AW/data.bin", HTTP_RANGE="bytes=5000-").status_code == 416


def test_new_version_and_tombstone(client, owner_token):
    first = publish(client, owner_token, "list.txt", b"one", content_type="text/plain").json()
    second = publish(client, owner_token, "list.txt", b"two", content_type="text/plain").json()
    assert second["entryId"] != first["entryId"]
    assert second["supersedes"] == first["entryId"]
    assert second["modified"] > first["modified"]
    served = client.get("/c/W1AW/list.txt")
    assert b"".join(served.streaming_content if served.streaming else [served.content]) == b"two"
    # The old version stays reachable under its own URL.
    old = client.get(f"/c/W1AW/list.txt?version={first['entryId']}")
    assert b"".join(old.streaming_content if old.streaming else [old.content]) == b"one"

    gone = client.delete(f"/api/content-catalog/{second['entryId']}", **auth(owner_token))
    assert gone.status_code == 201 and gone.json()["deleted"]
    missing = client.get("/c/W1AW/list.txt", HTTP_ACCEPT="application/json")
    assert missing.status_code == 404
    assert "deleted" in json.dumps(missing.json())
    catalog = client.get("/api/content-catalog").json()
    assert all(row["path"] != "list.txt" for row in catalog["entries"])


def test_missing_content_lists_what_the_mesh_holds(client, owner_token):
    publish(client, owner_token, "index.html", b"<p>hello</p>")
    as_json = client.get("/c/W1AW/nope.html", HTTP_ACCEPT="application/json")
    assert as_json.status_code == 404
    data = as_json.json()
    assert data["error"] == "not_found"
    assert "index.html" in json.dumps(data)
    as_html = client.get("/c/W1AW/nope.html", HTTP_ACCEPT="text/html")
    assert as_html.status_code == 404 and b"index.html" in as_html.content
    assert as_html["Content-Type"].startswith("text/html")


def test_catalog_lists_filters_and_paginates(client, owner_token):
    for index in range(3):
        publish(client, owner_token, f"page{index}.html", f"p{index}".encode(),
                priority=1 + index)
    data = client.get("/api/content-catalog").json()
    assert data["entryCount"] == 3 and data["callsign"] == "W1AW"
    assert data["totalSize"] == 6
    assert {"path", "hash", "size", "contentType", "priority", "origin", "modified"} <= set(
        data["entries"][0])
    assert client.get("/api/content-catalog?priority=2").json()["count"] == 1
    assert client.get("/api/content-catalog?origin=W1AW&pageSize=2").json()["next"]
    assert client.get("/api/content-catalog?origin=K1ABC").json()["count"] == 0
    assert client.get("/api/content-catalog?priority=9").status_code == 400
    assert client.get("/api/content-catalog?origin=!!").status_code == 400
    assert client.get("/api/content-catalog?page=7").status_code == 404
    entry_id = data["entries"][0]["entryId"]
    detail = client.get(f"/api/content-catalog/{entry_id}").json()
    assert detail["signature"] and detail["versions"][0]["entryId"] == entry_id
    assert client.get("/api/content-catalog/" + "0" * 64).status_code == 404


def test_multipart_publish(client, owner_token):
    upload = io.BytesIO(b"name,phone\nnet control,146.52\n")
    upload.name = "contacts.csv"
    response = client.post("/api/content-catalog",
                           {"file": upload, "path": "contacts.csv", "priority": "2"},
                           **auth(owner_token))
    assert response.status_code == 201, response.content
    assert response.json()["priority"] == 2 and response.json()["size"] == 30


@pytest.mark.parametrize("path", ["../etc/passwd", "a/../b", "a//b", "bad\x07bell", "x" * 256,
                                  "a\\b", "", "@v1"])
def test_bad_paths_are_400_and_store_nothing(client, owner_token, path):
    before = len(blob_files())
    response = client.post("/api/content-catalog?priority=3&path=" + path.replace("\x07", "%07"),
                           b"body", content_type="text/plain", **auth(owner_token))
    assert response.status_code == 400
    assert response.json()["error"] == "bad_path"
    assert ContentEntry.objects.count() == 0 and len(blob_files()) == before


def test_bad_priority_and_content_type(client, owner_token):
    bad = publish(client, owner_token, "x.txt", b"x", priority=7)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_priority"
    bad = publish(client, owner_token, "x.txt", b"x", content_type="not a type")
    assert bad.status_code == 400
    assert ContentEntry.objects.count() == 0


def test_over_size_upload_is_413_and_stores_nothing(client, owner_token, settings):
    settings.CATALOG_MAX_ENTRY_SIZE = 1000
    publish(client, owner_token, "keep.txt", b"kept", content_type="text/plain")
    before = len(blob_files())
    response = publish(client, owner_token, "big.bin", b"x" * 5000,
                       content_type="application/octet-stream")
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    upload = io.BytesIO(b"y" * 5000)
    upload.name = "big.bin"
    multipart = client.post("/api/content-catalog",
                            {"file": upload, "path": "big.bin", "priority": "3"},
                            **auth(owner_token))
    assert multipart.status_code == 413
    assert list(ContentEntry.objects.values_list("path", flat=True)) == ["keep.txt"]
    assert len(blob_files()) == before
    # A body that lies about its length (chunked, no Content-Length) is stopped by the store.
    with pytest.raises(services.CatalogError) as raised:
        services.content_publish(path="big.bin", chunks=iter([b"z" * 600, b"z" * 600]),
                                 priority=3)
    assert raised.value.status == 413
    assert len(blob_files()) == before


def test_publishing_needs_the_owner(client, owner_token):
    anonymous = publish(client, "", "x.txt", b"x")
    assert anonymous.status_code in (401, 403)
    wrong = publish(client, "not-a-token", "x.txt", b"x")
    assert wrong.status_code == 401
    entry = publish(client, owner_token, "x.txt", b"x").json()
    assert client.delete(f"/api/content-catalog/{entry['entryId']}").status_code in (401, 403)
    assert ContentEntry.objects.count() == 1


def test_unclaimed_station_cannot_publish(db):
    with pytest.raises(services.CatalogError) as raised:
        services.content_publish(path="a.txt", chunks=[b"a"], priority=3)
    assert raised.value.code == "not_claimed" and raised.value.status == 409


def test_proxy_pac_routes_radio_hosts(client):
    response = client.get("/proxy.pac", HTTP_HOST="10.0.0.5:8080")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ns-proxy-autoconfig"
    assert b'"PROXY 10.0.0.5:8080"' in response.content and b"*.radio" in response.content


def test_publish_command(owner_token, tmp_path):
    source = tmp_path / "plan.html"
    source.write_bytes(b"<p>plan</p>" * 100_000)
    out, err = io.StringIO(), io.StringIO()
    call_command("publish", str(source), "--path", "plans/plan.html", "--priority", "1",
                 stdout=out, stderr=err)
    assert "published /c/W1AW/plans/plan.html" in out.getvalue()
    assert "100%" in err.getvalue()  # progress on a large file
    entry = ContentEntry.objects.get(path="plans/plan.html")
    assert entry.size == 1_100_000 and entry.content_type == "text/html"
    with pytest.raises(CommandError, match="bad_path"):
        call_command("publish", str(source), "--path", "../x", stdout=out, stderr=err)
    with pytest.raises(CommandError, match="no such file"):
        call_command("publish", str(tmp_path / "absent"), "--path", "x", stdout=out)
    call_command("publish", "--delete", "--path", "plans/plan.html", stdout=out)
    assert ContentEntry.objects.get(path="plans/plan.html", is_current=True).deleted


def test_entries_from_peers_are_checked(client, owner_token):
    entry = publish(client, owner_token, "a.txt", b"aaaa", content_type="text/plain").json()
    wire = services.entry_to_wire(ContentEntry.objects.get(entry_id=entry["entryId"]))
    ContentEntry.objects.all().delete()
    forged = dict(wire, path="b.txt")  # fields changed after signing
    result = services.entries_ingest(entries=[forged, "junk", {"entryId": "x"}],
                                     received_from="peer1")
    assert not result.created and len(result.refused) == 3
    sig = base64.b64decode(wire["signature"])
    flipped = dict(wire, signature=base64.b64encode(bytes([sig[0] ^ 1]) + sig[1:]).decode())
    assert not services.entries_ingest(entries=[flipped], received_from="peer1").created
    ok = services.entries_ingest(entries=[wire], received_from="peer1")
    assert len(ok.created) == 1
    assert services.entries_ingest(entries="not a list").refused
    # Through the mesh handler: the forging peer is penalised, nothing is stored.
    from catalog.sync import entries_receive
    from mesh.registry import MeshHandlerError

    ContentEntry.objects.all().delete()
    counts = entries_receive({"entries": [forged, flipped], "origins": ["junk"]},
                             peer_station_id="peer2", peer_callsign="N0BAD")
    assert counts["refused"] == 2 and counts["stored"] == 0
    assert PeerPenalty.objects.get(station_id="peer2").count == 1
    assert not ContentEntry.objects.exists()
    with pytest.raises(MeshHandlerError):
        entries_receive({"entries": "nope"}, peer_station_id="peer2", peer_callsign="N0BAD")


def test_a_wrong_body_is_rejected_and_its_peer_penalised(client, owner_token):
    entry = publish(client, owner_token, "a.txt", b"the real body",
                    content_type="text/plain").json()
    row = ContentEntry.objects.get(entry_id=entry["entryId"])
    services.entry_evict(entry=row, force=True)
    row.refresh_from_db()
    assert not row.has_body
    with pytest.raises(services.CatalogError):
        services.body_store(entry=row, chunks=[b"a forged body"], source_station_id="evil",
                            source_callsign="N0EVL")
    row.refresh_from_db()
    assert not row.has_body and not services.blob_store().exists(row.content_hash)
    assert PeerPenalty.objects.get(station_id="evil").count == 1
    services.body_store(entry=row, chunks=[b"the real body"], source_station_id="good")
    row.refresh_from_db()
    assert row.has_body
    assert ContentReplica.objects.filter(entry=row, station_id="good").exists()


def test_lru_eviction_keeps_own_and_essential(client, owner_token):
    mine = publish(client, owner_token, "mine.bin", b"m" * 100).json()
    row = ContentEntry.objects.get(entry_id=mine["entryId"])
    # Pretend cached entries of others: same shape, not own.
    for index, priority in enumerate([3, 3, 1]):
        body = bytes([65 + index]) * 100
        cached = services.content_publish(path=f"c{index}.bin", chunks=[body],
                                          priority=priority)
        ContentEntry.objects.filter(pk=cached.pk).update(is_own=False)
    evicted = services.storage_enforce(budget=250)
    assert [e.path for e in evicted] == ["c0.bin", "c1.bin"]  # least recently used first
    row.refresh_from_db()
    assert row.has_body
    assert ContentEntry.objects.get(path="c2.bin").has_body  # priority 1 is never evicted


def test_admin_publishes_lists_and_steers(admin_client, owner_token):
    upload = io.BytesIO(b"<p>from the admin</p>")
    upload.name = "note.html"
    response = admin_client.post("/admin/catalog/contententry/add/",
                                 {"path": "admin/note.html", "priority": "2",
                                  "content_type": "", "body": upload})
    assert response.status_code == 302, response.content[-2000:]
    entry = ContentEntry.objects.get(path="admin/note.html")
    assert entry.is_own and entry.has_body and entry.content_type == "text/html"
    bad = admin_client.post("/admin/catalog/contententry/add/",
                            {"path": "../up", "priority": "2", "body": io.BytesIO(b"x")})
    assert bad.status_code == 200 and b"segment" in bad.content  # the form shows the error
    listing = admin_client.get("/admin/catalog/contententry/?priority__exact=2")
    assert listing.status_code == 200 and b"admin/note.html" in listing.content
    assert admin_client.get(f"/admin/catalog/contententry/{entry.pk}/change/").status_code == 200
    admin_client.post("/admin/catalog/contententry/",
                      {"action": "pin", "_selected_action": [entry.pk]})
    entry.refresh_from_db()
    assert entry.pinned
    admin_client.post("/admin/catalog/contententry/",
                      {"action": "reverify", "_selected_action": [entry.pk]})
    entry.refresh_from_db()
    assert entry.verified_at is not None


def test_radio_requests_in_proxy_form_and_no_open_proxy(rf):
    from catalog.middleware import rewrite_radio_request

    request = rf.get("/")
    request.path_info = request.path = "http://w1aw.radio/notices/"
    rewrite_radio_request(request)
    assert request.path_info == "/c/w1aw/notices/index.html"
    assert request.META["HTTP_HOST"] == "w1aw.radio"
    other = rf.get("/")
    other.path_info = other.path = "http://example.com/admin/"
    rewrite_radio_request(other)
    assert other.path_info == "http://example.com/admin/"  # matches nothing: a 404
    assert "HTTP_HOST" not in other.META
    by_host = rf.get("/", HTTP_HOST="dl1abc.radio:8080")
    rewrite_radio_request(by_host)
    assert by_host.path_info == "/c/dl1abc/index.html"


@pytest.fixture
def lying_peer():
    """A real HTTP server on loopback that answers every content request with a wrong body."""
    import http.server
    import threading

    class Liar(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"not what was signed"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_peer_serving_a_wrong_body_is_penalised_and_nothing_is_stored(
        client, owner_token, lying_peer):
    from catalog.fetch import body_fetch
    from mesh.models import Peer

    entry = publish(client, owner_token, "true.txt", b"the signed body",
                    content_type="text/plain").json()
    row = ContentEntry.objects.get(entry_id=entry["entryId"])
    services.entry_evict(entry=row, force=True)
    Peer.objects.create(station_id="f" * 32, callsign="N0LIE", endpoint=lying_peer,
                        discovery_method="manual", authenticated=True, state="active")
    assert body_fetch(entry=row) is None
    row.refresh_from_db()
    assert not row.has_body and not services.blob_store().exists(row.content_hash)
    assert PeerPenalty.objects.get(station_id="f" * 32).count == 1
    # Asked by a browser, the station says it cannot get the body rather than serving junk.
    missing = client.get("/c/W1AW/true.txt", HTTP_ACCEPT="application/json")
    assert missing.status_code == 404
    assert PeerPenalty.objects.get(station_id="f" * 32).count == 2


def test_prune_removes_what_a_crash_leaves_and_nothing_else(client, owner_token):
    import os
    import time

    from catalog.tasks import prune

    kept = publish(client, owner_token, "kept.txt", b"kept", content_type="text/plain").json()
    store = services.blob_store()
    orphan = store.write([b"body of an entry never committed"], max_size=1000)
    fresh = store.write([b"a publish still in progress"], max_size=1000)
    part = store.tmp / "dead.part"
    part.write_bytes(b"half a body")
    old = time.time() - 7200
    os.utime(orphan.path, (old, old))
    os.utime(part, (old, old))
    prune()
    assert not store.exists(orphan.hash) and not part.exists()
    assert store.exists(fresh.hash)  # too young to be an orphan
    assert store.exists(kept["hash"])


def test_demand_fades(client, owner_token):
    from catalog.tasks import prune

    entry = publish(client, owner_token, "popular.txt", b"p", priority=2).json()
    ContentEntry.objects.filter(entry_id=entry["entryId"]).update(demand=9, mesh_demand=4)
    prune()
    row = ContentEntry.objects.get(entry_id=entry["entryId"])
    assert (row.demand, row.mesh_demand) == (4, 2)
    prune()
    prune()
    row.refresh_from_db()
    assert (row.demand, row.mesh_demand) == (1, 0)
