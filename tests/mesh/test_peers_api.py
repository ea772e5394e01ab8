"""/api/peers, /api/local-servers, /api/mesh/*: who may do what, and bad input."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from mesh import services
from mesh.models import Link, Peer

pytestmark = pytest.mark.django_db


@pytest.fixture
def anyone() -> APIClient:
    return APIClient()


@pytest.fixture
def owner() -> APIClient:
    user = get_user_model().objects.create_superuser("W1AW", password="pw-for-tests")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_owner_adds_a_peer_and_anyone_lists_it(owner, anyone):
    response = owner.post("/api/peers", {"endpoint": "http://10.0.0.5:8080/",
                                         "callsign": "dl1bob"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["endpoint"] == "http://10.0.0.5:8080"
    assert response.json()["discoveryMethod"] == "manual"
    listing = anyone.get("/api/peers").json()
    assert [(p["endpoint"], p["callsign"], p["state"]) for p in listing] == [
        ("http://10.0.0.5:8080", "DL1BOB", "unknown")]
    assert listing[0]["links"][0]["kind"] == "lan"


def test_adding_the_same_endpoint_twice_keeps_one_peer(owner):
    for _ in range(2):
        assert owner.post("/api/peers", {"endpoint": "http://10.0.0.5:8080"},
                          format="json").status_code == 201
    assert Peer.objects.count() == 1 and Link.objects.count() == 1


def test_strangers_cannot_add_peers(anyone):
    response = anyone.post("/api/peers", {"endpoint": "http://10.0.0.5:8080"}, format="json")
    assert response.status_code in (401, 403)
    assert set(response.json()) >= {"error", "detail"}
    assert Peer.objects.count() == 0


@pytest.mark.parametrize("body, words", [
    ({"endpoint": "ftp://10.0.0.5"}, "scheme"),
    ({"endpoint": "http://"}, "no host"),
    ({"endpoint": "http://10.0.0.5:99999"}, "port"),
    ({"endpoint": "http://10.0.0.5:8080/api/peers"}, "no path"),
    ({"endpoint": "http://bad_host!:80"}, "not a valid host"),
    ({"endpoint": "http://10.0.0.5", "callsign": "not a call!"}, "callsign"),
    ({}, "endpoint"),
    ({"endpoint": "x" * 400}, "endpoint"),
])
def test_bad_peers_are_refused_with_the_reason(owner, body, words):
    response = owner.post("/api/peers", body, format="json")
    assert response.status_code == 400, response.json()
    assert words in response.json()["detail"]


def test_local_servers_lists_only_mdns_peers(anyone):
    services.peer_seen(station_id="a" * 32, endpoint="http://10.77.0.2:8080",
                       method=Peer.Method.MDNS, callsign="DL1A", capabilities=["mesh"])
    services.peer_add(endpoint="http://10.0.0.9:8080")
    servers = anyone.get("/api/local-servers").json()["servers"]
    assert [(s["callsign"], s["endpoint"], s["signalingUrl"]) for s in servers] == [
        ("DL1A", "http://10.77.0.2:8080", "ws://10.77.0.2:8080/ws/signal")]


def test_ping_names_the_station(anyone):
    from certificates.selectors import station_get

    body = anyone.get("/api/mesh/ping").json()
    assert body["stationId"] == station_get().station_id


def test_status_and_info_carry_the_mesh(anyone):
    status = anyone.get("/api/status").json()
    assert status["networkMode"] == "unknown"
    assert "mesh" in anyone.get("/api/info").json()["capabilities"]


def test_learnt_peers_are_bounded(settings):
    settings.MESH_MAX_LEARNT_PEERS = 3
    entries = [{"stationId": f"{i:032x}", "endpoint": f"http://10.0.1.{i}:8080"}
               for i in range(1, 10)]
    entries.append({"stationId": "self", "endpoint": "http://10.0.0.1:8080"})
    entries.append({"stationId": "f" * 32, "endpoint": "gopher://x"})
    entries.append("garbage")
    learnt = services.peers_learn(learnt_from="b" * 32, entries=entries, own_station_id="self")
    assert learnt == 3
    assert Peer.objects.filter(discovery_method="peer").count() == 3
    assert not Peer.objects.filter(station_id="self").exists()


def test_mdns_sighting_then_manual_add_keeps_one_row_with_the_better_method():
    services.peer_seen(station_id="c" * 32, endpoint="http://10.77.0.3:8080",
                       method=Peer.Method.PEER)
    services.peer_seen(station_id="c" * 32, endpoint="http://10.77.0.3:8080",
                       method=Peer.Method.MDNS)
    assert Peer.objects.get().discovery_method == "mdns"
    services.peer_add(endpoint="http://10.77.0.3:8080")
    assert Peer.objects.get().discovery_method == "manual"


def test_a_manual_add_survives_the_peer_announcing_itself_first():
    """The operator adds B by URL; meshd dials it and B's announce (no endpoint: B was
    dialled) arrives before the link is recorded under the dialled URL. The two rows become
    one, still manual, or meshd would stop dialling B and drop the link it just made."""
    services.peer_add(endpoint="http://10.77.0.9:8000")
    services.peer_seen(station_id="e" * 32, endpoint="", method=Peer.Method.PEER,
                       callsign="DL2PA")
    assert Peer.objects.count() == 2
    services.peer_seen(station_id="e" * 32, endpoint="http://10.77.0.9:8000",
                       method=Peer.Method.PEER, callsign="DL2PA")
    peer = Peer.objects.get()
    assert (peer.station_id, peer.endpoint, peer.discovery_method, peer.callsign) == (
        "e" * 32, "http://10.77.0.9:8000", "manual", "DL2PA")


def test_membership_sweep_without_meshd(settings):
    from datetime import timedelta

    from django.utils import timezone

    peer = services.peer_add(endpoint="http://10.0.0.5:8080")
    now = timezone.now()
    Peer.objects.filter(pk=peer.pk).update(state="active",
                                           last_contact=now - timedelta(seconds=5))
    assert services.membership_sweep(now=now) == 1
    assert Peer.objects.get().state == "suspect"
    Peer.objects.filter(pk=peer.pk).update(last_contact=now - timedelta(seconds=60))
    services.membership_sweep(now=now)
    assert Peer.objects.get().state == "unreachable"


def test_prune_forgets_old_discovered_peers_but_not_manual_ones(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.MESH_PRUNE_AFTER = 60
    old = timezone.now() - timedelta(seconds=120)
    services.peer_seen(station_id="d" * 32, endpoint="http://10.0.0.7:8080",
                       method=Peer.Method.PEER)
    services.peer_add(endpoint="http://10.0.0.8:8080")
    Peer.objects.update(last_contact=old)
    services.peers_prune()
    assert list(Peer.objects.values_list("discovery_method", flat=True)) == ["manual"]


def test_unsigned_blacklist_entry_becomes_a_report():
    from certificates.selectors import is_blacklisted

    fingerprint = "ab" * 32
    record = services.blacklist_entry_receive(
        entry={"fingerprint": fingerprint, "reason": "trust me", "timestamp": 1},
        received_from="e" * 32)
    assert record.status == "report" and "unsigned" in record.status_detail
    assert not is_blacklisted(fingerprint)
    assert services.blacklist_entry_receive(entry={"fingerprint": "zz", "reason": "",
                                                   "timestamp": 1}, received_from="x") is None


def test_peer_request_without_meshd_says_so():
    with pytest.raises(services.MeshError) as err:
        services.peer_request("a" * 32, "PING", {}, timeout=1)
    assert err.value.code == "no_daemon"
