"""Multi-hop forwarding on loopback: four stations in a line A-B-C-D, each adding only its
right-hand neighbour and dialling no station it merely heard of, so D reaches A only through
the mesh: routes show A three hops away, A's personal page opens at D byte for byte, and no
station but A keeps it."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import secrets
import sqlite3
import time
import uuid

import pytest
import websockets

from mesh import protocol
from mesh.forwarding import signed_message
from tests.catalog.test_replication import entry_at, fetch, publish
from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.stations import FakeStation, wait_for
from tests.mesh.test_link_both_ends import _bring_up

pytestmark = pytest.mark.integration

LINE = {"MESHSITE_MESH_RECONNECT_MAX": "2", "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off",
        "MESHSITE_MESH_ROUTE_INTERVAL": "4"}
CALLS = [f"DL{i}FW" for i in range(1, 5)]


@pytest.fixture(scope="module")
def ca():
    root = pki.meshsite_root("ed25519")
    return root, pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                           license_class="club")


@pytest.fixture(scope="module")
def line(tmp_path_factory, ca):
    root, ca = ca
    owners = [pki.issue(ca, callsign=call) for call in CALLS]
    stations = [StationProcess(tmp_path_factory.mktemp(f"fw-{i}"), env=LINE)
                for i in range(len(owners))]
    try:
        _bring_up(stations, root, owners)
        for left, right in itertools.pairwise(stations):
            result = left.manage("meshpeer", "add", left_url(right))
            assert result.returncode == 0, result.stderr
        yield stations
    finally:
        for station in stations:
            station.stop()


def left_url(station: StationProcess) -> str:
    return station.url


def route(station: StationProcess, callsign: str) -> dict | None:
    status, data = station.get("/api/routes")
    assert status == 200, data
    return next((r for r in data["routes"] if r["callsign"] == callsign), None)


@pytest.mark.timeout(600)
def test_personal_page_opens_three_hops_away_and_no_relay_keeps_it(line, tmp_path):
    a, b, c, d = line
    took = wait_for(lambda: (route(d, CALLS[0]) or {}).get("hops") == 3, 120,
                    "D has a three-hop route to A")
    first = route(d, CALLS[0])
    print(f"\nroute D->A after {took:.1f}s: {first}")
    assert first["nextHopCallsign"] == CALLS[2]
    body = bytes(range(256)) * 400 + b"personal notes"  # ~100 KB: several chunks
    publish(a, tmp_path, "notes.bin", body, 4)
    wait_for(lambda: entry_at(d, CALLS[0], "notes.bin") is not None, 60, "metadata at D")
    status, got, _headers = fetch(d, f"/c/{CALLS[0]}/notes.bin")
    assert status == 200, got[:500]
    assert got == body
    for station in (b, c, d):
        assert not entry_at(station, CALLS[0], "notes.bin")["hasBody"]
    assert entry_at(a, CALLS[0], "notes.bin")["hasBody"]
    # ETag and Range behave as for a local body.
    status, part, _ = fetch(d, f"/c/{CALLS[0]}/notes.bin", Range="bytes=10-19")
    assert status == 206 and part == body[10:20]


async def _forward(fake: FakeStation, ws, payload: dict) -> dict:
    envelope = fake.envelope("FORWARD", payload)
    await ws.send(json.dumps(envelope))
    return await fake.answer_to(ws, envelope["id"])


def _request(fake: FakeStation, dest: str, entry: str, *, ttl: int = 8,
             origin: FakeStation | None = None, rid: str | None = None) -> dict:
    signer = origin or fake
    rid = rid or uuid.uuid4().hex
    request = {"entry": entry}
    sig = signer.key.sign(signed_message(rid, fake.station_id, dest, "content", request))
    return {"rid": rid, "origin": fake.station_id, "dest": dest, "kind": "content",
            "request": request, "ttl": ttl, "hop": 1, "credential": signer.credential,
            "sig": protocol.b64encode(sig)}


@pytest.mark.timeout(600)
async def test_bad_forward_requests_are_refused_with_a_reason_and_the_link_lives(line, ca,
                                                                                  tmp_path):
    a, _, _, d = line
    _, issuer = ca
    fake = FakeStation.make(pki.issue(issuer, callsign="DL9FAK"), "DL9FAK")
    other = FakeStation.make(pki.issue(issuer, callsign="DL9OTH"), "DL9OTH")
    a_id = a.get("/api/status")[1]["stationId"]
    entry_id = publish(a, tmp_path, "bad-input.txt", b"held by A only", 4)
    wait_for(lambda: (route(d, CALLS[0]) or {}).get("hops") == 3, 120, "D routes to A")
    async with websockets.connect(d.url.replace("http", "ws") + "/ws/coordinate",
                                  ping_interval=None) as ws:
        assert (await fake.handshake(ws))["type"] == "WELCOME"
        answers = {
            "ttl over 10": await _forward(fake, ws, _request(fake, a_id, entry_id, ttl=11)),
            "unknown entry": await _forward(fake, ws, _request(fake, a_id, secrets.token_hex(32))),
            "forged origin": await _forward(fake, ws, _request(fake, a_id, entry_id,
                                                               origin=other)),
            "first over 32 KiB": await _forward(fake, ws, {**_request(fake, a_id, entry_id),
                                                           "first": 32 * 1024 + 1}),
        }
        rid = uuid.uuid4().hex
        first = await _forward(fake, ws, {**_request(fake, a_id, entry_id, rid=rid),
                                          "first": 4})
        answers["replayed id"] = await _forward(fake, ws, _request(fake, a_id, entry_id, rid=rid))
        codes = {what: answer["payload"].get("error") for what, answer in answers.items()}
        assert codes == {"ttl over 10": "bad_ttl", "unknown entry": "unknown_entry",
                         "forged origin": "forged_origin", "first over 32 KiB": "malformed",
                         "replayed id": "loop"}, answers
        # The good one went the whole way: A answered with the body's size and its first
        # four bytes, asked for with it, via C, B and A.
        assert first["type"] == "REPLY", first
        assert first["payload"]["size"] == len(b"held by A only")
        assert first["payload"]["chunk"] == 4
        assert protocol.b64decode(first["payload"]["data"], "data") == b"held"
        assert first["payload"]["via"] == [CALLS[3], CALLS[2], CALLS[1], CALLS[0]]
        ping = fake.envelope("PING", {})
        await ws.send(json.dumps(ping))
        assert (await fake.answer_to(ws, ping["id"]))["type"] == "REPLY"
    log = d.output()
    for code in ("bad_ttl", "forged_origin", "loop"):
        assert f"error={code}" in log, code


def _inject(station: StationProcess, ghost: str, next_hop: str) -> None:
    """A stale route to `ghost` via `next_hop` written straight into the station's stored
    table (SQLite, milliseconds: meshd rewrites the table every few seconds)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(station.data_dir / "db.sqlite3", timeout=20) as db:
        db.execute("DELETE FROM mesh_route WHERE destination = ?", (ghost,))
        db.execute("INSERT INTO mesh_route (destination, callsign, next_hop, next_hop_callsign,"
                   " cost, hops, seqno, refreshed_at, lan_next_hop, updated_at) VALUES "
                   "(?, '', ?, '', 200, 2, 1, ?, '', ?)", (ghost, next_hop, now, now))


def _inject_loop(b: StationProcess, c: StationProcess, ids: dict, ghost: str) -> None:
    """Stale routes to `ghost` forced into B (via C) and C (via B)."""
    _inject(b, ghost, ids["c"])
    _inject(c, ghost, ids["b"])


@pytest.mark.timeout(600)
async def test_an_injected_loop_is_stopped_by_the_seen_set_and_the_ttl(line, ca, tmp_path):
    """meshd's own table cannot loop (Babel's feasibility condition); stale rows forced into
    two stations' stored routes can: B sends a request for a ghost station to C and C back to
    B. The seen-set stops it at B on its second visit; a TTL of 2 stops it at C first."""
    a, b, c, _ = line
    _, issuer = ca
    fake = FakeStation.make(pki.issue(issuer, callsign="DL9LOP"), "DL9LOP")
    ids = {name: station.get("/api/status")[1]["stationId"]
           for name, station in (("a", a), ("b", b), ("c", c))}
    entry_id = publish(a, tmp_path, "loop.txt", b"only A has this", 4)
    wait_for(lambda: entry_at(b, CALLS[0], "loop.txt") and entry_at(c, CALLS[0], "loop.txt"),
             60, "the entry's metadata at B and C")
    ghost = secrets.token_hex(16)
    async with websockets.connect(b.url.replace("http", "ws") + "/ws/coordinate",
                                  ping_interval=None) as ws:
        assert (await fake.handshake(ws))["type"] == "WELCOME"
        answers = {}
        for ttl in (8, 2):
            # meshd rewrites the stored table every few seconds: inject again until it held
            # for the whole (sub-second) trip.
            for _ in range(10):
                _inject_loop(b, c, ids, ghost)
                answer = await _forward(fake, ws, _request(fake, ghost, entry_id, ttl=ttl))
                if answer["payload"].get("error") != "no_route":
                    break
            answers[ttl] = answer["payload"]
        assert answers[8]["error"] == "loop", answers
        assert f"at {CALLS[1]}, hop 3" in answers[8]["detail"], answers
        assert answers[2]["error"] == "ttl_expired", answers
        assert f"at {CALLS[2]}, hop 2" in answers[2]["detail"], answers
    # Nothing circulates afterwards: no more refusals (or forwards) show up in either log
    # during a window well above the round trip of a hop (a negative, so it is a window).
    def refusals() -> tuple[int, int]:
        return (b.output().count("mesh forward refused"),
                c.output().count("mesh forward refused"))

    before = refusals()
    window = time.monotonic() + 2.0
    while time.monotonic() < window:
        assert refusals() == before
        await asyncio.sleep(0.2)
