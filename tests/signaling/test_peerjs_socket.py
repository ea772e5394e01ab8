"""The PeerJS WebSocket against a real daphne: every case of specs/peerjs-protocol.md sections
2 and 3, the timers of section 4, and the improvements (OPEN on re-attach, bounded queues, dead
sockets in seconds)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import pytest

from signaling.selectors import peerjs_ids
from tests.signaling.conftest import module_daphne, queued
from tests.signaling.stationdb import eventually
from tests.signaling.wsclient import closed, peerjs, recv, send, silent

pytestmark = pytest.mark.integration

station = module_daphne(
    MESHSITE_PEERJS_EXPIRE_TIMEOUT="1",
    MESHSITE_PEERJS_CLEANUP_INTERVAL="0.2",
    MESHSITE_PEERJS_ALIVE_TIMEOUT="3",
    MESHSITE_PEERJS_CONCURRENT_LIMIT="4",
    MESHSITE_PEERJS_QUEUE_PER_ID="3",
    MESHSITE_SIGNALING_MAX_ICE_CANDIDATES="3",
    MESHSITE_SIGNALING_MAX_WARNINGS="3",
)

OFFER = {"sdp": {"type": "offer", "sdp": "v=0\r\n"}, "type": "data", "connectionId": "dc_1",
         "label": "dc_1", "reliable": True, "serialization": "binary"}


@pytest.fixture
def base(station) -> str:
    return station.ws_url


async def opens(base: str, peer_id: str, token: str) -> bool:
    """Whether `peer_id` can be taken now (the socket is closed again either way)."""
    ws = await peerjs(base, peer_id, token, expect_open=False)
    frame = await recv(ws)
    await ws.close()
    return frame["type"] == "OPEN"


async def test_open_then_relay_both_ways_with_src_rewritten_and_only_four_fields(base):
    alice = await peerjs(base, "alice", "ta")
    bob = await peerjs(base, "bob", "tb")
    await send(alice, {"type": "OFFER", "src": "mallory", "dst": "bob", "payload": OFFER,
                       "extra": "dropped"})
    assert await recv(bob) == {"type": "OFFER", "src": "alice", "dst": "bob", "payload": OFFER}
    await send(bob, {"type": "ANSWER", "dst": "alice", "payload": {"sdp": {"type": "answer"}}})
    assert await recv(alice) == {"type": "ANSWER", "src": "bob", "dst": "alice",
                                 "payload": {"sdp": {"type": "answer"}}}
    await send(bob, {"type": "CANDIDATE", "dst": "alice", "payload": {"candidate": "c"}})
    assert (await recv(alice))["src"] == "bob"
    # The exact bytes: {type, src, dst, payload} in the anchor's order.
    await send(alice, {"payload": 1, "dst": "bob", "type": "OFFER"})
    raw = await asyncio.wait_for(bob.recv(), 5)
    assert raw == '{"type":"OFFER","src":"alice","dst":"bob","payload":1}'
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("params", [
    {"id": "a", "token": "t"}, {"key": "peerjs", "token": "t"}, {"key": "peerjs", "id": "a"},
    {"key": "peerjs", "id": "", "token": "t"},
])
async def test_missing_id_token_or_key_is_an_error_then_close(base, params):
    ws = await peerjs(base, params.get("id"), params.get("token"), params.get("key"),
                      expect_open=False)
    assert await recv(ws) == {"type": "ERROR", "payload": {
        "msg": "No id, token, or key supplied to websocket server"}}
    assert await closed(ws) is not None


async def test_wrong_key_is_an_error_then_close(base):
    ws = await peerjs(base, "a", "t", "other", expect_open=False)
    assert await recv(ws) == {"type": "ERROR", "payload": {"msg": "Invalid key provided"}}
    await closed(ws)


async def test_id_with_control_characters_is_refused_with_a_clear_error(base):
    ws = await peerjs(base, "a%1Fb", "t", expect_open=False)
    frame = await recv(ws)
    assert frame["type"] == "ERROR" and "control characters" in frame["payload"]["msg"]
    await closed(ws)


async def test_id_taken_with_another_token_leaves_the_holder_working(base):
    alice = await peerjs(base, "alice", "ta")
    mallory = await peerjs(base, "alice", "tm", expect_open=False)
    assert await recv(mallory) == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    await closed(mallory)
    bob = await peerjs(base, "bob", "tb")
    await send(bob, {"type": "OFFER", "dst": "alice", "payload": {}})
    assert (await recv(alice))["src"] == "bob"


async def test_same_token_reattaches_with_open_and_queued_messages_and_closes_the_old(base):
    old = await peerjs(base, "alice", "ta")
    new = await peerjs(base, "alice", "ta")  # OPEN: the anchor sends none here
    assert await closed(old) == 4000
    bob = await peerjs(base, "bob", "tb")
    await send(bob, {"type": "OFFER", "dst": "alice", "payload": {"n": 1}})
    assert (await recv(new))["payload"] == {"n": 1}
    # The old socket's close must not have released the id: a third token is still refused.
    mallory = await peerjs(base, "alice", "tm", expect_open=False)
    assert (await recv(mallory))["type"] == "ID-TAKEN"


async def test_messages_for_an_absent_id_are_delivered_after_open_in_order(base):
    alice = await peerjs(base, "alice", "ta")
    for n in range(3):
        await send(alice, {"type": "CANDIDATE" if n else "OFFER", "dst": "late",
                           "payload": {"n": n}})
    await eventually(lambda: queued("late") == 3, 5, "three frames queued for 'late'")
    late = await peerjs(base, "late", "tl")  # OPEN first (consumed by the helper), then queue
    assert [(await recv(late))["payload"]["n"] for _ in range(3)] == [0, 1, 2]
    await silent(alice, 1.5)  # delivered: no EXPIRE


async def test_expire_reaches_the_sender_after_the_expire_timeout(base):
    alice = await peerjs(base, "alice", "ta")
    sent = time.monotonic()
    await send(alice, {"type": "OFFER", "dst": "nobody", "payload": OFFER})
    await send(alice, {"type": "CANDIDATE", "dst": "nobody", "payload": {}})
    frame = await recv(alice, timeout=10)
    elapsed = time.monotonic() - sent
    assert frame == {"type": "EXPIRE", "src": "nobody", "dst": "alice"}
    assert 0.9 <= elapsed < 8  # expire timeout 1 s, sweep 0.2 s; generous upper bound
    await silent(alice, 1.0)  # one EXPIRE per (src, dst), not one per message
    # The queue is gone: "nobody" connecting now gets nothing after OPEN.
    nobody = await peerjs(base, "nobody", "tn")
    await silent(nobody, 0.5)


async def test_a_full_queue_answers_expire_at_once(base):
    alice = await peerjs(base, "alice", "ta")
    for _ in range(3):
        await send(alice, {"type": "OFFER", "dst": "nobody", "payload": {}})
    sent = time.monotonic()
    await send(alice, {"type": "ANSWER", "dst": "nobody", "payload": {}})
    assert await recv(alice) == {"type": "EXPIRE", "src": "nobody", "dst": "alice"}
    assert time.monotonic() - sent < 0.9  # before the 1 s expire timeout


async def test_leave_and_expire_to_an_absent_id_are_not_queued(base):
    alice = await peerjs(base, "alice", "ta")
    bob = await peerjs(base, "bob", "tb")
    await send(alice, {"type": "LEAVE", "dst": "ghost"})
    await send(alice, {"type": "EXPIRE", "dst": "ghost"})
    # A socket's frames are handled in order: once bob has the OFFER sent after them, the
    # LEAVE and EXPIRE were handled while ghost was absent.
    await send(alice, {"type": "OFFER", "dst": "bob", "payload": {}})
    assert (await recv(bob))["type"] == "OFFER"
    assert queued("ghost") == 0
    ghost = await peerjs(base, "ghost", "tg")
    await silent(ghost, 0.5)
    await silent(alice, 1.5)  # and no EXPIRE for them either


async def test_leave_is_relayed_and_leave_without_dst_releases_the_id(base):
    alice = await peerjs(base, "alice", "ta")
    bob = await peerjs(base, "bob", "tb")
    await send(alice, {"type": "LEAVE", "dst": "bob"})
    assert await recv(bob) == {"type": "LEAVE", "src": "alice", "dst": "bob"}
    await send(alice, {"type": "LEAVE"})
    await closed(alice)
    again = await peerjs(base, "alice", "other-token")  # free again
    await again.close()


async def test_unknown_types_invalid_json_and_binary_are_ignored_and_the_socket_kept(base):
    alice = await peerjs(base, "alice", "ta")
    bob = await peerjs(base, "bob", "tb")
    for junk in ["not json", "[1,2]", '"str"', json.dumps({"type": "WHATEVER", "dst": "bob"}),
                 json.dumps({"type": "OFFER"}), json.dumps({"type": "OFFER", "dst": 5}),
                 json.dumps({"no": "type"})]:
        await send(alice, junk)
    await alice.send(b"\x00\x01binary")
    await silent(alice, 0.3)
    await silent(bob, 0.1)
    await send(alice, {"type": "OFFER", "dst": "bob", "payload": {}})
    assert (await recv(bob))["type"] == "OFFER"


async def test_concurrent_limit_answers_the_anchor_error(base):
    sockets = [await peerjs(base, f"p{n}", "t") for n in range(4)]
    fifth = await peerjs(base, "p4", "t", expect_open=False)
    assert await recv(fifth) == {"type": "ERROR", "payload": {
        "msg": "Server has reached its concurrent user limit"}}
    await closed(fifth)
    await sockets[0].close()
    await eventually(lambda: opens(base, "p4", "t"), 5, "a place is free again")


async def test_alive_timeout_closes_a_client_without_heartbeat_and_heartbeat_keeps_it(base):
    quiet = await peerjs(base, "quiet", "tq")
    beating = await peerjs(base, "beating", "tb")
    started = time.monotonic()

    async def beat() -> None:
        while True:
            await send(beating, {"type": "HEARTBEAT"})
            await asyncio.sleep(0.5)

    task = asyncio.create_task(beat())
    try:
        await closed(quiet, timeout=10)
        assert time.monotonic() - started >= 2.5  # alive timeout 3 s
        await asyncio.sleep(1.5)
        await silent(beating, 0.1)  # no reply to HEARTBEAT, and still open
    finally:
        task.cancel()
    replacement = await peerjs(base, "quiet", "new-token")  # the id was released
    await replacement.close()


async def test_candidates_over_the_limit_are_dropped_and_abuse_closes_1008(base):
    alice = await peerjs(base, "alice", "ta")
    bob = await peerjs(base, "bob", "tb")
    for n in range(3):
        await send(alice, {"type": "CANDIDATE", "dst": "bob", "payload": {"n": n}})
    assert [(await recv(bob))["payload"]["n"] for _ in range(3)] == [0, 1, 2]
    await send(alice, {"type": "CANDIDATE", "dst": "bob", "payload": {"n": 3}})
    await silent(bob, 0.3)
    await send(alice, {"type": "CANDIDATE", "dst": "bob", "payload": {"n": 4}})
    await send(alice, {"type": "CANDIDATE", "dst": "bob", "payload": {"n": 5}})
    assert await closed(alice) == 1008


async def test_a_frame_over_64_kib_closes_with_1009(base):
    alice = await peerjs(base, "alice", "ta")
    await send(alice, {"type": "OFFER", "dst": "x", "payload": "a" * 65000})  # under: kept
    await send(alice, {"type": "OFFER", "dst": "x", "payload": "a" * 66000})
    assert await closed(alice) == 1009


def _raw_websocket(port: int, path: str) -> socket.socket:
    """A WebSocket handshake on a bare socket that then never reads: it answers no ping, like a
    phone that left the network."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_dead_socket_is_noticed_in_seconds_and_its_id_freed(station, base):
    dead = _raw_websocket(station.port, "/peerjs/peerjs?key=peerjs&id=phone&token=old")
    try:
        await eventually(lambda: "phone" in peerjs_ids(), 5, "the dead socket holds 'phone'")
        refused = await peerjs(base, "phone", "new", expect_open=False)
        assert (await recv(refused))["type"] == "ID-TAKEN"
        # Pings every 1 s, 1 s to answer (the test daphne's settings).
        await eventually(lambda: opens(base, "phone", "new"), 10, "the dead socket's id freed",
                         interval=0.5)
    finally:
        dead.close()
