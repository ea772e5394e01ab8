"""Three real stations on loopback linked A-B-C by manual peers (separate processes, data dirs,
Redis): trust gossip end to end, and what a link refuses."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from mesh import protocol
from mesh.services import blacklist_entry_message
from tests.certificates import pki
from tests.harness import StationProcess
from tests.mesh.stations import (
    FakeStation,
    Inbox,
    add_certificate,
    blacklist,
    provision,
    wait_for,
)

pytestmark = pytest.mark.integration

# Learnt peers are not dialled, so A and C talk only through B: a real two-hop chain.
FAST = {"MESHSITE_MESH_GOSSIP_INTERVAL": "5", "MESHSITE_MESH_RECONNECT_MAX": "2",
        "MESHSITE_MESH_DIAL_LEARNT_PEERS": "off"}


@pytest.fixture(scope="module")
def pkis():
    root = pki.meshsite_root("ed25519")
    ca = pki.issue(root, callsign="DL0CA", ca=True, path_length=0, can_issue=True,
                   license_class="club")
    other_root = pki.meshsite_root("ed25519")
    return {
        "root": root, "ca": ca,
        "alice": pki.issue(ca, callsign="DL1A"), "bob": pki.issue(ca, callsign="DL1B"),
        "carol": pki.issue(ca, callsign="DL1C"), "trudy": pki.issue(ca, callsign="DL2TRU"),
        "eve": pki.issue(ca, callsign="DL6EVE"), "newcomer": pki.issue(ca, callsign="DL3NEW"),
        "mallory": pki.issue(other_root, callsign="DL6MAL"),
    }


@pytest.fixture(scope="module")
def trio(tmp_path_factory, pkis):
    stations = {}
    try:
        for name, call in (("a", "DL1A"), ("b", "DL1B"), ("c", "DL1C")):
            station = StationProcess(tmp_path_factory.mktemp(f"st-{name}"), env=FAST)
            provision(station, roots=[pkis["root"]], owner=pkis[{"a": "alice", "b": "bob",
                                                                 "c": "carol"}[name]],
                      callsign=call)
            stations[name] = station
        for station in stations.values():
            station.start()
        a, b, c = stations["a"], stations["b"], stations["c"]
        for left, right in ((a, b), (b, c)):
            result = left.manage("meshpeer", "add", right.url)
            assert result.returncode == 0, result.stderr

        def linked(station: StationProcess, callsigns: set[str]) -> bool:
            _, peers = station.get("/api/peers")
            return {p["callsign"] for p in peers if p["authenticated"]} >= callsigns

        wait_for(lambda: linked(b, {"DL1A", "DL1C"}) and linked(a, {"DL1B"})
                 and linked(c, {"DL1B"}), 60, "links A-B and B-C authenticated")
        yield stations
    finally:
        for station in stations.values():
            station.stop()


def test_links_are_up_with_announced_callsigns(trio):
    _, peers = trio["a"].get("/api/peers")
    bob = next(p for p in peers if p["callsign"] == "DL1B")
    assert bob["stationId"] and bob["state"] == "active"
    assert bob["links"][0]["connected"] is True
    # C is not linked to A, but learns of it through B's peer list (method "peer")
    wait_for(lambda: any(p["callsign"] == "DL1A" and p["discoveryMethod"] == "peer"
                         for p in trio["c"].get("/api/peers")[1]), 30, "C learns A from B")


def test_certificate_then_blacklist_added_at_a_reach_c(trio, pkis):
    a, c = trio["a"], trio["c"]
    expected = pki.fingerprint(pkis["newcomer"].cert)
    # Checked before the add: news is pushed at once, so C may have it before the console
    # command that added it at A has even exited.
    assert c.get(f"/api/certificates/{expected}")[0] == 404
    fingerprint = add_certificate(a, pkis["newcomer"])
    assert fingerprint == expected
    took = wait_for(lambda: c.get(f"/api/certificates/{fingerprint}")[0] == 200, 30,
                    "certificate from A at C")
    print(f"\ncertificate A->C (2 hops) in {took:.2f}s")

    blacklist(a, fingerprint, "key compromised")
    took = wait_for(lambda: any(e["fingerprint"] == fingerprint and e["status"] == "applied"
                                for e in c.get("/api/mesh/blacklist")[1]), 30,
                    "blacklist entry from A at C")
    print(f"blacklist entry A->C (2 hops) in {took:.2f}s")
    _, detail = c.get(f"/api/certificates/{fingerprint}")
    assert detail["state"] == "blacklisted"
    entry = next(e for e in c.get("/api/mesh/blacklist")[1] if e["fingerprint"] == fingerprint)
    assert entry["reason"] == "key compromised"
    station_ids = {p["callsign"]: p["stationId"] for p in c.get("/api/peers")[1]}
    assert entry["signer"] == station_ids["DL1A"]  # signed by A ...
    assert entry["receivedFrom"] == station_ids["DL1B"]  # ... relayed by B


async def _connect(station: StationProcess, fake: FakeStation) -> tuple:
    ws = await websockets.connect(station.ws_url + "/ws/coordinate")
    answer = await fake.handshake(ws)
    return ws, answer


def test_untrusted_station_is_refused(trio, pkis):
    fake = FakeStation.make(pkis["mallory"], "DL6MAL")

    async def run() -> tuple:
        ws, answer = await _connect(trio["a"], fake)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return answer, ws.close_code

    answer, code = asyncio.run(run())
    assert answer["type"] == "REFUSED"
    assert answer["error"] in ("untrusted_root", "chain_incomplete"), answer
    assert code == 4403


def test_blacklisted_station_is_refused(trio, pkis):
    eve = FakeStation.make(pkis["eve"], "DL6EVE")

    async def attempt() -> dict:
        ws, answer = await _connect(trio["a"], eve)
        await ws.close()
        return answer

    assert asyncio.run(attempt())["type"] == "WELCOME"  # trusted until blacklisted
    fingerprint = pkis["eve"].cert.fingerprint(pki.hashes.SHA256()).hex()
    blacklist(trio["a"], fingerprint, "abuse")
    answer = asyncio.run(attempt())
    assert (answer["type"], answer["error"]) == ("REFUSED", "blacklisted"), answer


def test_guest_without_credential_and_bad_proof_are_refused(trio, pkis):
    trudy = FakeStation.make(pkis["trudy"], "DL2TRU")

    async def run(frame: dict) -> dict:
        async with websockets.connect(trio["a"].ws_url + "/ws/coordinate") as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "HELLO"
            await ws.send(json.dumps(frame))
            return json.loads(await ws.recv())

    guest = asyncio.run(run({"type": "AUTH", "nonce": protocol.new_nonce(), "proof": "AA=="}))
    assert (guest["type"], guest["error"]) == ("REFUSED", "unproven")
    early = asyncio.run(run({"type": "PING"}))
    assert (early["type"], early["error"]) == ("REFUSED", "unproven")
    wrong_nonce = trudy.key.sign(b"not the nonce")
    bad = asyncio.run(run({"type": "AUTH", "credential": trudy.credential,
                           "nonce": protocol.new_nonce(),
                           "proof": protocol.b64encode(wrong_nonce)}))
    assert (bad["type"], bad["error"]) == ("REFUSED", "bad_proof")
    garbage = asyncio.run(run({"type": "AUTH", "credential": "nope", "nonce": "x" * 20}))
    assert garbage["type"] == "REFUSED"


def test_forged_blacklist_entries_are_kept_as_reports(trio, pkis):
    trudy = FakeStation.make(pkis["trudy"], "DL2TRU")  # a trusted station relays them
    mallory = FakeStation.make(pkis["mallory"], "DL6MAL")  # an untrusted signer
    victim = pki.issue(pkis["ca"], callsign="DL4VIC")
    victim_fp = add_certificate(trio["a"], victim)
    timestamp = protocol.now_ms()
    forged_signature = mallory.key.sign(blacklist_entry_message(
        fingerprint=victim_fp, reason="forged", timestamp=timestamp,
        signer=mallory.station_id))
    entries = [
        {"fingerprint": victim_fp, "reason": "unsigned", "timestamp": timestamp},
        {"fingerprint": victim_fp, "reason": "forged", "timestamp": timestamp,
         "signer": mallory.station_id, "credential": mallory.credential,
         "signature": protocol.b64encode(forged_signature)},
        {"fingerprint": victim_fp, "reason": "bad sig", "timestamp": timestamp + 1,
         "signer": trudy.station_id, "credential": trudy.credential,
         "signature": protocol.b64encode(b"\0" * 64)},
    ]

    async def run() -> dict:
        ws, answer = await _connect(trio["a"], trudy)
        assert answer["type"] == "WELCOME", answer
        message = trudy.envelope("BLACKLIST_UPDATE", {"blacklist": entries})
        await ws.send(json.dumps(message))
        reply = await trudy.answer_to(ws, message["id"])
        await ws.close()
        return reply

    reply = asyncio.run(run())
    assert reply["type"] == "REPLY" and reply["payload"] == {"applied": 0, "reports": 3}
    _, rows = trio["a"].get("/api/mesh/blacklist")
    reports = {e["reason"]: e["statusDetail"] for e in rows if e["fingerprint"] == victim_fp}
    assert set(reports) == {"unsigned", "forged", "bad sig"}
    assert all(e["status"] == "report" for e in rows if e["fingerprint"] == victim_fp)
    assert "unsigned" in reports["unsigned"]
    assert "not trusted" in reports["forged"]
    assert "bad signature" in reports["bad sig"]
    _, detail = trio["a"].get(f"/api/certificates/{victim_fp}")
    assert detail["state"] != "blacklisted"


def test_replayed_and_tampered_messages_are_refused(trio, pkis):
    trudy = FakeStation.make(pkis["trudy"], "DL2TRU")

    async def run() -> tuple:
        ws, answer = await _connect(trio["b"], trudy)
        assert answer["type"] == "WELCOME", answer
        ping = trudy.envelope("PING", {})
        await ws.send(json.dumps(ping))
        first = await trudy.answer_to(ws, ping["id"])
        await ws.send(json.dumps(ping))  # the very same signed frame again
        second = await trudy.answer_to(ws, ping["id"])
        tampered = trudy.envelope("PING", {})
        tampered["payload"] = {"evil": True}
        await ws.send(json.dumps(tampered))
        third = await trudy.answer_to(ws, tampered["id"])
        old = protocol.build_envelope(type_="PING", sender=trudy.station_id, payload={},
                                      sign=trudy.key.sign, ttl=10, request=True,
                                      ts=protocol.now_ms() - 3_600_000)
        await ws.send(json.dumps(old))
        fourth = await trudy.answer_to(ws, old["id"])
        await ws.close()
        return first, second, third, fourth

    first, second, third, fourth = asyncio.run(run())
    assert first["type"] == "REPLY"
    assert (second["type"], second["payload"]["error"]) == ("ERROR", "replay")
    assert (third["type"], third["payload"]["error"]) == ("ERROR", "bad_signature")
    assert (fourth["type"], fourth["payload"]["error"]) == ("ERROR", "stale")


def test_peer_request_through_meshd(trio):
    _, peers = trio["a"].get("/api/peers")
    bob = next(p for p in peers if p["callsign"] == "DL1B")
    from tests.mesh.stations import run_django

    body = ("from mesh.services import peer_request\n"
            "print(json.dumps(peer_request(sys.argv[1], 'PING', {}, timeout=5)))")
    started = time.monotonic()
    out = run_django(trio["a"], body, bob["stationId"])
    assert "pong" in json.loads(out.strip().splitlines()[-1])
    assert time.monotonic() - started < 30


def test_news_at_the_accepting_end_is_pushed_over_its_accepted_links(trio, pkis):
    """C only accepts links (B dials it). A certificate added at C goes out over C's accepted
    links at once (C's side starts the CERT_SYNC), and so reaches A against the dial
    direction without waiting for anyone's gossip beat."""
    a, c = trio["a"], trio["c"]
    trudy = FakeStation.make(pkis["trudy"], "DL2TRU")
    newcomer = pki.issue(pkis["ca"], callsign="DL5NEW")

    def cert_sync(key: str, fingerprint: str):
        """C's CERT_SYNC naming `fingerprint` under `key`: C also starts periodic syncs (every
        gossip beat), so the first CERT_SYNC on the link may be one from before the add."""
        def match(frame: dict) -> bool:
            items = frame.get("payload", {}).get(key) if frame.get("type") == "CERT_SYNC" else None
            return any((item if isinstance(item, str) else item.get("fingerprint")) == fingerprint
                       for item in items or ())
        return match

    async def run() -> tuple[str, float]:
        ws, answer = await _connect(c, trudy)
        assert answer["type"] == "WELCOME", answer
        inbox = Inbox(ws)
        fingerprint = await asyncio.to_thread(add_certificate, c, newcomer)
        added = time.monotonic()
        asked = await inbox.wait_for(cert_sync("have", fingerprint), 20,
                                     "C's CERT_SYNC offering the new certificate")
        pushed = time.monotonic() - added
        await ws.send(json.dumps(protocol.build_envelope(
            type_="REPLY", sender=trudy.station_id, payload={"certificates": [],
                                                              "want": [fingerprint]},
            sign=trudy.key.sign, ttl=10, re=asked["id"])))
        sent = await inbox.wait_for(cert_sync("certificates", fingerprint), 10,
                                    "C's CERT_SYNC carrying the certificate we asked for")
        assert [item["fingerprint"] for item in sent["payload"]["certificates"]] == [fingerprint]
        await inbox.close()
        return fingerprint, pushed

    fingerprint, pushed = asyncio.run(run())
    took = wait_for(lambda: a.get(f"/api/certificates/{fingerprint}")[0] == 200, 30,
                    "certificate from C at A")
    print(f"\nC pushed its new certificate over an accepted link {pushed:.2f}s after the add; "
          f"at A (2 hops against the dial direction) {took:.2f}s after that")


def test_a_station_that_keeps_sending_bad_messages_is_cut_off(trio, pkis):
    """Every refused message costs the station a signed ERROR: past 30 refusals in a minute the
    link is closed with REFUSED abuse, and a well-behaved link is left alone."""
    from mesh.links import CLOSE_REFUSED, MAX_REFUSALS_PER_MINUTE

    trudy = FakeStation.make(pkis["trudy"], "DL2TRU")

    async def run() -> tuple[int, dict, int | None]:
        ws, answer = await _connect(trio["b"], trudy)
        assert answer["type"] == "WELCOME", answer
        errors, refused = 0, None
        for _ in range(MAX_REFUSALS_PER_MINUTE + 1):
            bad = trudy.envelope("PING", {})
            bad["payload"] = {"tampered": True}
            await ws.send(json.dumps(bad))
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("type") == "ERROR":
                    errors += 1
                elif frame.get("type") == "REFUSED":
                    refused = frame
        except websockets.exceptions.ConnectionClosed:
            pass
        return errors, refused, ws.close_code

    errors, refused, code = asyncio.run(run())
    assert errors == MAX_REFUSALS_PER_MINUTE
    assert refused is not None and refused["error"] == "abuse", refused
    assert code == CLOSE_REFUSED
    assert trio["a"].get("/api/peers")[1]  # the station still answers
