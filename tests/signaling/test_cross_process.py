"""Two daphne processes on one Redis: relay, presence, id uniqueness and room capacity hold
across them, and the peers of a process killed with SIGKILL leave everyone's presence within
seconds (presence TTL 2 s, refresh 0.2 s in these tests)."""

from __future__ import annotations

import json
import time

import pytest

from signaling.selectors import client_find
from tests.signaling.conftest import hubs_live, module_pair, queued
from tests.signaling.stationdb import eventually
from tests.signaling.wsclient import (
    closed,
    expect_type,
    native,
    peerjs,
    recv,
    send,
    silent,
    ws_connect,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

pair = module_pair(MESHSITE_SIGNALING_ROOM_CAPACITY="3",
                   MESHSITE_PEERJS_CONCURRENT_LIMIT="4",
                   MESHSITE_PEERJS_EXPIRE_TIMEOUT="3")


@pytest.fixture
async def bases(pair) -> tuple[str, str]:
    await hubs_live(*pair)
    return pair[0].ws_url, pair[1].ws_url


async def test_native_relay_from_one_process_to_the_other(bases):
    one, two = bases
    alice, reg_a = await native(one, room="x")
    bob, reg_b = await native(two, room="x")
    assert client_find(protocol="signal", peer_id=reg_a["clientId"])["process"] != \
        client_find(protocol="signal", peer_id=reg_b["clientId"])["process"]
    await expect_type(alice, "PEER_JOINED")
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    await send(alice, {"type": "OFFER", "target": reg_b["clientId"], "offer": offer,
                       "from": "forged"})
    got = await expect_type(bob, "OFFER_RECEIVED")
    assert got == {"type": "OFFER_RECEIVED", "offer": offer, "from": reg_a["clientId"],
                   "fromCallsign": "GUEST"}
    await send(bob, {"type": "ANSWER", "target": reg_a["clientId"],
                     "answer": {"type": "answer", "sdp": "v=0"}})
    assert (await expect_type(alice, "ANSWER_RECEIVED"))["from"] == reg_b["clientId"]
    await send(alice, {"type": "ICE_CANDIDATE", "target": reg_b["clientId"],
                       "candidate": {"candidate": "c", "sdpMLineIndex": 0, "sdpMid": "0"}})
    assert (await expect_type(bob, "ICE_CANDIDATE_RECEIVED"))["from"] == reg_a["clientId"]
    # Rooms scope relay across processes too.
    carol, reg_c = await native(two, room="elsewhere")
    await send(alice, {"type": "OFFER", "target": reg_c["clientId"], "offer": offer})
    assert (await expect_type(alice, "ERROR"))["error"] == "unknown_target"
    await silent(carol, 0.2)


async def test_presence_across_processes(bases):
    one, two = bases
    alice, reg_a = await native(one, room="p")
    bob, reg_b = await native(two, room="p")
    assert reg_b["peers"] == [{"id": reg_a["clientId"], "callsign": "GUEST",
                               "hasLicense": False}]
    assert (await expect_type(alice, "PEER_JOINED"))["peer"]["id"] == reg_b["clientId"]
    await send(alice, {"type": "LIST_PEERS"})
    assert [p["id"] for p in (await expect_type(alice, "PEER_LIST"))["peers"]] == [
        reg_b["clientId"]]
    await bob.close()
    assert await expect_type(alice, "PEER_LEFT") == {"type": "PEER_LEFT",
                                                     "peerId": reg_b["clientId"]}
    await send(alice, {"type": "LIST_PEERS"})
    assert (await expect_type(alice, "PEER_LIST"))["peers"] == []


async def test_a_late_room_broadcast_never_repeats_what_the_peer_list_said(bases):
    """A PEER_JOINED that another process published before a client registered can reach this
    process after the client's REGISTERED, whose peer list already holds that peer (under load
    it once came even before the REGISTERED). The client is told each join and leave once."""
    from meshsite.redisconn import get_redis
    from signaling.hub import KEY_PREFIX, US

    one, two = bases
    alice, reg_a = await native(one, room="late")
    bob, reg_b = await native(two, room="late")
    assert [peer["id"] for peer in reg_b["peers"]] == [reg_a["clientId"]]

    def late(text: str) -> None:  # as process one's broadcast, arriving late at two
        get_redis().publish(f"{KEY_PREFIX}b", US.join(("R", "elsewhere", "late", "", text)))

    late(json.dumps({"type": "PEER_JOINED", "peer": {"id": reg_a["clientId"],
                                                      "callsign": "GUEST",
                                                      "hasLicense": False}}))
    late(json.dumps({"type": "PEER_LEFT", "peerId": "0" * 32}))  # never in the room
    # Carol's join is published after those, so it reaches process two after them.
    carol, reg_c = await native(one, room="late")
    assert (await recv(bob))["peer"]["id"] == reg_c["clientId"]
    await carol.close()
    assert await recv(bob) == {"type": "PEER_LEFT", "peerId": reg_c["clientId"]}
    await send(bob, {"type": "LIST_PEERS"})
    assert await recv(bob) == {"type": "PEER_LIST", "room": "late", "peers": [
        {"id": reg_a["clientId"], "callsign": "GUEST", "hasLicense": False}]}
    await alice.close()


async def test_peerjs_relay_across_processes_and_queue_delivered_on_the_other(bases):
    one, two = bases
    alice = await peerjs(one, "alice", "ta")
    bob = await peerjs(two, "bob", "tb")
    await send(alice, {"type": "OFFER", "src": "mallory", "dst": "bob", "payload": {"n": 1}})
    raw = await bob.recv()
    assert raw == '{"type":"OFFER","src":"alice","dst":"bob","payload":{"n":1}}'
    await send(bob, {"type": "ANSWER", "dst": "alice", "payload": {"n": 2}})
    assert await recv(alice) == {"type": "ANSWER", "src": "bob", "dst": "alice",
                                 "payload": {"n": 2}}
    # A message for an id that is nowhere waits, and is delivered on whichever process it
    # connects to; a LEAVE relayed across processes arrives as sent.
    await send(alice, {"type": "OFFER", "dst": "late", "payload": {"n": 3}})
    await eventually(lambda: queued("late") == 1, 5, "the OFFER queued for 'late'")
    late = await peerjs(two, "late", "tl")
    assert await recv(late) == {"type": "OFFER", "src": "alice", "dst": "late",
                                "payload": {"n": 3}}
    await send(late, {"type": "LEAVE", "dst": "alice"})
    assert await recv(alice) == {"type": "LEAVE", "src": "late", "dst": "alice"}


async def test_peerjs_expire_reaches_a_sender_on_the_other_process(bases):
    one, two = bases
    alice = await peerjs(one, "alice", "ta")
    await peerjs(two, "bob", "tb")  # keeps process two's sweeper busy with a live client
    sent = time.monotonic()
    await send(alice, {"type": "OFFER", "dst": "nobody", "payload": {}})
    assert await recv(alice, timeout=12) == {"type": "EXPIRE", "src": "nobody", "dst": "alice"}
    assert time.monotonic() - sent >= 2.5  # expire timeout 3 s


async def test_a_peerjs_id_is_unique_across_processes_and_reattaches_across_them(bases):
    one, two = bases
    holder = await peerjs(one, "w1aw-phone", "t1")
    thief = await peerjs(two, "w1aw-phone", "t2", expect_open=False)
    assert await recv(thief) == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    await closed(thief)
    # The holder is unaffected, and reachable from the other process.
    sender = await peerjs(two, "sender", "ts")
    await send(sender, {"type": "OFFER", "dst": "w1aw-phone", "payload": {}})
    assert (await recv(holder))["src"] == "sender"
    # The same token on the other process takes the id over: OPEN there, 4000 here.
    moved = await peerjs(two, "w1aw-phone", "t1")
    assert await closed(holder) == 4000
    assert client_find(protocol="peerjs", peer_id="w1aw-phone")["process"] == \
        client_find(protocol="peerjs", peer_id="sender")["process"]
    await send(sender, {"type": "OFFER", "dst": "w1aw-phone", "payload": {"after": True}})
    assert (await recv(moved))["payload"] == {"after": True}


async def test_the_peerjs_concurrent_limit_counts_both_processes(bases):
    one, two = bases
    for n in range(4):
        await peerjs(one if n % 2 else two, f"p{n}", "t")
    for base in (one, two):
        extra = await peerjs(base, "p9", "t", expect_open=False)
        assert await recv(extra) == {"type": "ERROR", "payload": {
            "msg": "Server has reached its concurrent user limit"}}
        await closed(extra)


async def test_room_capacity_counts_both_processes(bases):
    one, two = bases
    await native(one, room="cap")
    await native(two, room="cap")
    await native(one, room="cap")
    for base in (two, one):
        ws = await ws_connect(f"{base}/ws/signal")
        await send(ws, {"type": "REGISTER", "room": "cap"})
        frame = await expect_type(ws, "ERROR")
        assert frame["error"] == "room_full" and "cap" in frame["details"]


async def test_a_killed_process_leaves_presence_within_seconds(daphne_factory):
    """SIGKILL one process: nothing of it says goodbye; the survivor's reaper removes its
    peers (PEER_LEFT to the room, gone from LIST_PEERS) and frees its PeerJS ids."""
    survivor = daphne_factory()
    victim = daphne_factory()
    await hubs_live(survivor, victim)
    watcher, _ = await native(survivor.ws_url, room="net")
    doomed = set()
    for _ in range(2):
        _ws, registered = await native(victim.ws_url, room="net")
        doomed.add(registered["clientId"])
        assert (await expect_type(watcher, "PEER_JOINED"))["peer"]["id"] == registered["clientId"]
    await peerjs(victim.ws_url, "portable", "old-token")
    await send(watcher, {"type": "LIST_PEERS"})
    assert {p["id"] for p in (await expect_type(watcher, "PEER_LIST"))["peers"]} == doomed

    victim.kill()  # SIGKILL to its process group
    killed = time.monotonic()
    left = set()
    while left != doomed:
        frame = await expect_type(watcher, "PEER_LEFT", timeout=15)
        left.add(frame["peerId"])
    elapsed = time.monotonic() - killed
    print(f"\nPEER_LEFT for both peers of the killed process after {elapsed:.2f} s")
    assert elapsed < 15
    await send(watcher, {"type": "LIST_PEERS"})
    assert (await expect_type(watcher, "PEER_LIST"))["peers"] == []
    # The PeerJS id is free: another token gets it on the survivor.
    again = await peerjs(survivor.ws_url, "portable", "new-token", expect_open=False)
    assert await recv(again) == {"type": "OPEN"}
    freed = time.monotonic() - killed
    print(f"PeerJS id of the killed process free after {freed:.2f} s")
    assert freed < 15
