"""The operator's view of meshd's routing table: routes_store, /api/routes, the admin list and
`manage.py meshroutes`."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone as django_timezone
from rest_framework.test import APIClient

from mesh import selectors, services
from mesh.models import Peer, Route

pytestmark = pytest.mark.django_db

SELF = "5e1f" * 8
ALICE = "a1" * 16  # alice's station, a direct neighbour
BOB = "b0" * 16  # bob's, behind alice
CAROL = "ca" * 16  # carol's, reached over RF only


def row(destination: str, **overrides: Any) -> dict[str, Any]:
    """A route as meshd hands it over: exactly the keys of the routes_store contract."""
    fields = {"destination": destination, "callsign": "", "next_hop": destination,
              "next_hop_callsign": "", "cost": 96, "hops": 1, "seqno": 7,
              "refreshed_at": django_timezone.now() - timedelta(seconds=3),
              "lan_next_hop": destination, "lan_cost": 96, "lan_hops": 1}
    return {**fields, **overrides}


def table() -> dict[str, tuple]:
    return {r.destination: (r.callsign, r.next_hop, r.cost, r.hops, r.seqno, r.lan_next_hop,
                            r.lan_cost, r.lan_hops) for r in Route.objects.all()}


def store(*rows: dict[str, Any]) -> dict[str, int]:
    return services.routes_store(list(rows), self_station_id=SELF)


@pytest.fixture
def mesh_of_three() -> None:
    """alice linked (LAN), bob two hops away through alice, carol over RF with no LAN route."""
    store(row(ALICE, callsign="W1AW", cost=96),
          row(BOB, callsign="", next_hop=ALICE, next_hop_callsign="W1AW", cost=192, hops=2,
              lan_next_hop=ALICE, lan_cost=192, lan_hops=2),
          row(CAROL, callsign="G4CAR", cost=300, lan_next_hop="", lan_cost=None, lan_hops=None))


@pytest.fixture
def anyone() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_admin() -> Client:
    """alice, the station owner, in the admin."""
    user = get_user_model().objects.create_superuser("alice", password="pw-for-tests")
    client = Client()
    client.force_login(user)
    return client


def listed(page: str) -> list[str]:
    """The destinations of an admin changelist page, in order."""
    return re.findall(r'class="field-destination"><a href="[^"]*">([0-9a-f]{32})<', page)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("meshroutes", *args, stdout=out)
    return out.getvalue()


# -- routes_store ------------------------------------------------------------------------------

def test_store_adds_changes_and_removes_routes():
    alice = row(ALICE)
    assert store(alice, row(BOB, next_hop=ALICE, hops=2, cost=200),
                 row(CAROL, cost=300)) == {"created": 3, "updated": 0, "deleted": 0}
    alice_written = Route.objects.get(destination=ALICE).updated_at

    counts = store(alice, row(BOB, next_hop=CAROL, hops=2, cost=350, seqno=8,
                                   lan_next_hop="", lan_cost=None, lan_hops=None),
                   row("d0" * 16, next_hop=ALICE, hops=2, cost=250, callsign="dl1dan",
                       lan_next_hop=ALICE, lan_cost=250, lan_hops=2))
    assert counts == {"created": 1, "updated": 1, "deleted": 1}
    assert table() == {
        ALICE: ("", ALICE, 96, 1, 7, ALICE, 96, 1),
        BOB: ("", CAROL, 350, 2, 8, "", None, None),
        "d0" * 16: ("DL1DAN", ALICE, 250, 2, 7, ALICE, 250, 2),
    }
    # An unchanged route is not rewritten.
    assert Route.objects.get(destination=ALICE).updated_at == alice_written


def test_a_refresh_alone_is_a_change():
    first = row(ALICE)
    store(first)
    later = first["refreshed_at"] + timedelta(seconds=16)
    assert store(row(ALICE, refreshed_at=later)) == {"created": 0, "updated": 1, "deleted": 0}
    assert Route.objects.get().refreshed_at == later


def test_an_empty_table_removes_everything_and_clear_does_too(mesh_of_three):
    assert store() == {"created": 0, "updated": 0, "deleted": 3}
    assert Route.objects.count() == 0
    store(row(ALICE))
    assert services.routes_clear() == 1
    assert Route.objects.count() == 0


def test_a_thousand_routes_replace_a_thousand_others():
    first = [row(f"{n:032x}", next_hop=ALICE, hops=2) for n in range(1, 1001)]
    assert store(*first)["created"] == 1000
    second = [row(f"{n:032x}", next_hop=ALICE, hops=2, cost=500) for n in range(501, 1501)]
    assert store(*second) == {"created": 500, "updated": 500, "deleted": 500}
    assert Route.objects.count() == 1000
    assert set(Route.objects.values_list("cost", flat=True)) == {500}
    assert not Route.objects.filter(destination=f"{1:032x}").exists()


def test_refreshed_at_in_another_zone_is_the_same_instant():
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    store(row(ALICE, refreshed_at=at))
    same = at.astimezone(timezone(timedelta(hours=2)))
    assert store(row(ALICE, refreshed_at=same))["updated"] == 0


@pytest.mark.parametrize("overrides, words", [
    ({"destination": "xyz"}, "rows[0].destination: a station id is 32 lowercase hex"),
    ({"destination": "A1" * 16}, "rows[0].destination"),
    ({"destination": "a1" * 15}, "rows[0].destination"),
    ({"destination": 5}, "rows[0].destination"),
    ({"callsign": "not a call!"}, "rows[0].callsign"),
    ({"callsign": None}, "rows[0].callsign"),
    ({"next_hop": ""}, "rows[0].next_hop"),
    ({"next_hop_callsign": "W" * 17}, "rows[0].next_hop_callsign"),
    ({"cost": -1}, "rows[0].cost: an integer from 0 to 65535"),
    ({"cost": 65536}, "rows[0].cost"),
    ({"cost": 1.5}, "rows[0].cost"),
    ({"cost": True}, "rows[0].cost"),
    ({"hops": 0}, "rows[0].hops: an integer from 1 to 255"),
    ({"hops": 256}, "rows[0].hops"),
    ({"seqno": 65536}, "rows[0].seqno"),
    ({"seqno": "7"}, "rows[0].seqno"),
    ({"refreshed_at": datetime(2026, 5, 1, 12, 0)}, "rows[0].refreshed_at: an aware"),
    ({"refreshed_at": "2026-05-01T12:00:00Z"}, "rows[0].refreshed_at"),
    ({"lan_next_hop": "nope"}, "rows[0].lan_next_hop"),
    ({"lan_cost": None}, "rows[0].lan_cost"),
    ({"lan_hops": 0}, "rows[0].lan_hops"),
    ({"lan_next_hop": "", "lan_hops": None}, "rows[0].lan_cost: must be None"),
    ({"lan_next_hop": "", "lan_cost": None}, "rows[0].lan_hops: must be None"),
    ({"metric": 3}, "rows[0]: missing nothing; unknown metric"),
    ({"destination": SELF, "next_hop": ALICE}, "rows[0].destination: " + SELF + " is this station"),
    ({"next_hop": SELF}, "rows[0].next_hop: " + SELF + " is this station"),
    ({"lan_next_hop": SELF}, "rows[0].lan_next_hop"),
])
def test_a_bad_row_is_refused_naming_its_field_and_nothing_changes(mesh_of_three, overrides,
                                                                    words):
    before = table()
    with pytest.raises(ValueError) as err:
        store({**row(ALICE), **overrides}, row(BOB))
    assert words in str(err.value)
    assert table() == before


def test_a_missing_key_a_duplicate_and_bad_arguments_are_named():
    partial = row(ALICE)
    del partial["seqno"]
    with pytest.raises(ValueError, match=r"rows\[0\]: missing seqno"):
        store(partial)
    with pytest.raises(ValueError, match=r"rows\[1\]\.destination: .* appears twice"):
        store(row(ALICE), row(ALICE, cost=5))
    with pytest.raises(ValueError, match=r"rows\[0\]: a route is a dict"):
        services.routes_store(["garbage"], self_station_id=SELF)
    with pytest.raises(ValueError, match="rows: a list"):
        services.routes_store(None, self_station_id=SELF)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="self_station_id"):
        services.routes_store([row(ALICE)], self_station_id="me")
    assert Route.objects.count() == 0


def test_no_route_to_this_station_is_ever_stored():
    with pytest.raises(ValueError, match="this station itself"):
        store(row(ALICE), row(SELF, next_hop=ALICE, hops=2))
    assert Route.objects.count() == 0


# -- selectors ---------------------------------------------------------------------------------

def test_blank_callsigns_are_filled_from_the_peer_list_and_stored_ones_win(mesh_of_three):
    services.peer_seen(station_id=BOB, endpoint="", method=Peer.Method.PEER, callsign="dl1bob")
    services.peer_seen(station_id=ALICE, endpoint="", method=Peer.Method.PEER,
                       callsign="K1OLD")
    services.peer_seen(station_id=CAROL, endpoint="", method=Peer.Method.PEER)  # no callsign
    bob = selectors.route_to(BOB)
    assert (bob.callsign, bob.next_hop_callsign) == ("DL1BOB", "W1AW")
    assert selectors.route_to(ALICE).callsign == "W1AW"  # meshd's, not the peer row's
    assert selectors.route_to(CAROL).callsign == "G4CAR"
    assert selectors.route_to("d0" * 16) is None
    assert Route.objects.get(destination=BOB).callsign == ""  # filled when read, not stored


def test_a_next_hops_callsign_also_comes_from_its_own_route():
    store(row(ALICE, callsign="W1AW"), row(BOB, next_hop=ALICE, hops=2, cost=200),
          row(CAROL, next_hop=BOB, hops=3, cost=300))
    services.peer_seen(station_id=BOB, endpoint="", method=Peer.Method.PEER, callsign="DL1BOB")
    services.peer_seen(station_id=ALICE, endpoint="", method=Peer.Method.PEER,
                       callsign="K1OLD")
    assert [(r.callsign, r.next_hop_callsign) for r in selectors.routes()] == [
        ("W1AW", "W1AW"),  # a neighbour is its own next hop: meshd's callsign, not the peer's
        ("DL1BOB", "W1AW"),
        ("", "DL1BOB"),  # bob's route has no callsign: the peer list's
    ]


def test_routes_are_ordered_by_cost_then_callsign():
    store(row(ALICE, callsign="W1AW", cost=200), row(BOB, callsign="DL1BOB", cost=200),
          row(CAROL, callsign="ZZ9Z", cost=100))
    assert [r.callsign for r in selectors.routes()] == ["ZZ9Z", "DL1BOB", "W1AW"]


def test_filled_callsigns_take_part_in_the_order():
    store(row(ALICE, callsign="W1AW", cost=200), row(BOB, cost=200))
    services.peer_seen(station_id=BOB, endpoint="", method=Peer.Method.PEER, callsign="ZL1BOB")
    assert [r.callsign for r in selectors.routes()] == ["W1AW", "ZL1BOB"]


def test_age_is_seconds_since_the_refresh_with_one_decimal():
    refreshed = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    store(row(ALICE, refreshed_at=refreshed))
    route = Route.objects.get()
    assert route.age_at(refreshed + timedelta(seconds=12.34)) == 12.3
    assert route.age_at(refreshed - timedelta(seconds=2)) == 0.0  # a clock step back


# -- GET /api/routes ---------------------------------------------------------------------------

def test_the_api_shows_the_table(anyone, mesh_of_three):
    services.peer_seen(station_id=BOB, endpoint="", method=Peer.Method.PEER, callsign="DL1BOB")
    response = anyone.get("/api/routes")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["count"] == 3
    assert [r["destination"] for r in body["routes"]] == [ALICE, BOB, CAROL]
    alice, bob, carol = body["routes"]
    assert set(alice) == {"destination", "callsign", "nextHop", "nextHopCallsign", "cost",
                          "hops", "seqno", "age", "lanOnly"}
    assert bob == {"destination": BOB, "callsign": "DL1BOB", "nextHop": ALICE,
                   "nextHopCallsign": "W1AW", "cost": 192, "hops": 2, "seqno": 7,
                   "age": bob["age"], "lanOnly": {"nextHop": ALICE, "cost": 192, "hops": 2}}
    # Stored 3 s before the request: no earlier, and not wildly later on a slow machine.
    assert 3.0 <= bob["age"] < 120 and round(bob["age"], 1) == bob["age"]
    assert carol["lanOnly"] is None and carol["callsign"] == "G4CAR"


def test_the_api_is_open_exactly_as_the_peer_list_is(anyone, mesh_of_three):
    """GET /api/peers needs no authentication and checks none; /api/routes copies it."""
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer mso_not-a-real-token"}):
        peers = anyone.get("/api/peers", **headers)
        routes = anyone.get("/api/routes", **headers)
        assert routes.status_code == peers.status_code == 200
        assert routes.json()["count"] == 3


def test_the_api_is_read_only(anyone, alice_admin, mesh_of_three):
    assert anyone.post("/api/routes", {}, format="json").status_code == 405
    assert anyone.delete("/api/routes").status_code == 405
    assert alice_admin.delete("/api/routes").status_code == 405
    assert Route.objects.count() == 3


@pytest.mark.parametrize("destination, expected", [
    (BOB, [BOB]),
    (BOB.upper(), [BOB]),
    ("g4car", [CAROL]),
    ("DL1BOB", [BOB]),  # known only from the peer list
    ("N0NE", []),
    ("d0" * 16, []),
    ("", [ALICE, BOB, CAROL]),  # an empty filter is no filter
])
def test_the_api_filters_by_station_id_or_callsign(anyone, mesh_of_three, destination,
                                                   expected):
    services.peer_seen(station_id=BOB, endpoint="", method=Peer.Method.PEER, callsign="DL1BOB")
    body = anyone.get("/api/routes", {"destination": destination}).json()
    assert [r["destination"] for r in body["routes"]] == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize("destination", ["not a call!", "W" * 17, "a1" * 20, "<script>"])
def test_a_malformed_filter_is_a_400_naming_the_parameter(anyone, mesh_of_three, destination):
    response = anyone.get("/api/routes", {"destination": destination})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_destination"
    assert body["detail"].startswith("destination: ")
    assert "neither a station id" in body["detail"]


def test_the_api_with_no_routes_is_an_empty_list(anyone):
    assert anyone.get("/api/routes").json() == {"count": 0, "routes": []}


def test_the_schema_documents_the_routes_api(anyone):
    schema = anyone.get("/api/schema/?format=json", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/routes"]["get"]
    assert set(operation["responses"]) == {"200", "400"}
    assert [p["name"] for p in operation["parameters"]] == ["destination"]
    assert "routing table" in operation["description"]
    route = schema["components"]["schemas"]["MeshRoute"]
    assert set(route["properties"]) == {"destination", "callsign", "nextHop", "nextHopCallsign",
                                        "cost", "hops", "seqno", "age", "lanOnly"}


# -- manage.py meshroutes ----------------------------------------------------------------------

def test_the_command_says_when_there_are_no_routes():
    assert run().strip() == ("no routes yet (meshd has not learnt any; is the station linked "
                             "to a peer?)")


def test_the_command_prints_aligned_columns(mesh_of_three):
    lines = run().splitlines()
    assert lines[0].split() == ["DESTINATION", "CALLSIGN", "NEXT-HOP", "COST", "HOPS", "AGE",
                                "LAN-ONLY", "NEXT-HOP"]
    assert len(lines) == 4
    alice, bob, carol = lines[1:]
    assert alice.split()[:6] == [ALICE, "W1AW", "W1AW", f"({ALICE[:8]})", "96", "1"]
    assert bob.split()[:6] == [BOB, "-", "W1AW", f"({ALICE[:8]})", "192", "2"]
    assert carol.split()[-1] == "none"  # over RF only: no LAN/IP route
    assert alice.split()[6].endswith("s")
    # Text columns start, number columns end, at the same place on every line.
    callsign = lines[0].index("CALLSIGN")
    assert {line[callsign:].split()[0] for line in lines} == {"CALLSIGN", "W1AW", "-", "G4CAR"}
    assert all(line[callsign - 2:callsign] == "  " for line in lines)
    cost_end = lines[0].index("COST") + len("COST")
    assert [line[:cost_end].split()[-1] for line in lines] == ["COST", "96", "192", "300"]
    assert all(line[cost_end:cost_end + 2] == "  " for line in lines)


def test_the_lan_only_column_shows_only_when_a_route_differs():
    store(row(ALICE, callsign="W1AW"))
    assert "LAN-ONLY" not in run()
    store(row(ALICE, callsign="W1AW"), row(BOB, next_hop=CAROL, hops=2, cost=400,
                                           lan_next_hop=ALICE, lan_cost=900, lan_hops=3))
    lines = run().splitlines()
    assert lines[0].split()[-2:] == ["LAN-ONLY", "NEXT-HOP"]
    bob = next(line for line in lines if line.startswith(BOB))
    assert bob.endswith(f"{ALICE} (cost 900, 3 hops)")


def test_the_command_filters_and_refuses_a_malformed_destination(mesh_of_three):
    lines = run("--destination", "g4car").splitlines()
    assert len(lines) == 2 and lines[1].startswith(CAROL)
    assert run("--destination", "N0NE").strip() == "no route to N0NE"
    with pytest.raises(CommandError, match="--destination: 'bad call!' is neither a station id"):
        run("--destination", "bad call!")


def test_the_command_prints_the_api_document_as_json(anyone, mesh_of_three):
    document = json.loads(run("--json"))
    api = anyone.get("/api/routes").json()
    for body in (document, api):  # ages move on between the two reads
        for route in body["routes"]:
            route.pop("age")
    assert document == api
    assert document["count"] == 3
    one = json.loads(run("--json", "--destination", BOB))
    assert [r["destination"] for r in one["routes"]] == [BOB]
    assert json.loads(run("--json", "--destination", "N0NE")) == {"count": 0, "routes": []}


# -- admin -------------------------------------------------------------------------------------

def test_the_admin_lists_routes_read_only(alice_admin, mesh_of_three):
    services.peer_seen(station_id=BOB, endpoint="", method=Peer.Method.PEER, callsign="DL1BOB")
    response = alice_admin.get("/admin/mesh/route/")
    assert response.status_code == 200
    page = response.content.decode()
    for text in (ALICE, BOB, CAROL, "W1AW", "DL1BOB", "G4CAR", "Age (s)"):
        assert text in page
    assert "/admin/mesh/route/add/" not in page
    search = alice_admin.get("/admin/mesh/route/", {"q": "dl1bob"}).content.decode()
    assert BOB in search and CAROL not in search
    assert BOB in alice_admin.get("/admin/mesh/route/", {"q": BOB[:10]}).content.decode()
    by_callsign = alice_admin.get("/admin/mesh/route/", {"o": "1"})  # the callsign column
    assert by_callsign.status_code == 200
    assert listed(by_callsign.content.decode()) == [BOB, CAROL, ALICE]  # DL1BOB, G4CAR, W1AW
    assert listed(page) == [ALICE, BOB, CAROL]  # by cost


def test_the_admin_refuses_to_add_change_or_delete(alice_admin, mesh_of_three):
    route = Route.objects.get(destination=ALICE)
    assert alice_admin.get("/admin/mesh/route/add/").status_code == 403
    assert alice_admin.post("/admin/mesh/route/add/", {"destination": "d0" * 16}
                            ).status_code == 403
    assert alice_admin.post(f"/admin/mesh/route/{route.pk}/change/", {"cost": 1}
                            ).status_code == 403
    assert alice_admin.post(f"/admin/mesh/route/{route.pk}/delete/", {"post": "yes"}
                            ).status_code == 403
    assert Route.objects.count() == 3 and Route.objects.get(destination=ALICE).cost == 96


def test_strangers_do_not_see_the_admin_list(mesh_of_three):
    response = Client().get("/admin/mesh/route/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
