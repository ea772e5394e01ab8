"""The native `/ws/signal` protocol against a real daphne: REGISTER, presence, relay with `from`
set by the station, rooms and their capacity, and every error answered with the connection
kept."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.signaling.conftest import module_daphne
from tests.signaling.wsclient import (
    closed,
    expect_type,
    native,
    recv,
    send,
    silent,
    ws_connect,
)

pytestmark = pytest.mark.integration

station = module_daphne(
    MESHSITE_SIGNALING_ROOM_CAPACITY="3",
    MESHSITE_SIGNALING_IDLE_TIMEOUT="2",
    MESHSITE_SIGNALING_MAX_ICE_CANDIDATES="3",
    MESHSITE_SIGNALING_MAX_WARNINGS="4",
)


@pytest.fixture
def base(station) -> str:
    return station.ws_url


async def test_register_as_guest_lists_peers_and_announces_join_and_leave(base):
    alice, reg_a = await native(base, room="net")
    assert reg_a["callsign"] == "GUEST" and reg_a["hasLicense"] is False
    assert reg_a["room"] == "net" and reg_a["peers"] == [] and "serverOwner" in reg_a
    assert len(reg_a["clientId"]) == 32
    bob, reg_b = await native(base, room="net")
    assert reg_b["peers"] == [{"id": reg_a["clientId"], "callsign": "GUEST",
                               "hasLicense": False}]
    joined = await expect_type(alice, "PEER_JOINED")
    assert joined["peer"] == {"id": reg_b["clientId"], "callsign": "GUEST", "hasLicense": False}
    await silent(bob, 0.2)  # no PEER_JOINED about oneself
    await bob.close()
    left = await expect_type(alice, "PEER_LEFT")
    assert left == {"type": "PEER_LEFT", "peerId": reg_b["clientId"]}


async def test_offer_answer_and_candidates_relayed_with_from_set_by_the_station(base):
    alice, reg_a = await native(base, room="r")
    bob, reg_b = await native(base, room="r")
    await expect_type(alice, "PEER_JOINED")
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}
    await send(alice, {"type": "OFFER", "target": reg_b["clientId"], "offer": offer,
                       "from": "mallory"})
    got = await expect_type(bob, "OFFER_RECEIVED")
    assert got["from"] == reg_a["clientId"] and got["offer"] == offer and "target" not in got
    await send(bob, {"type": "ANSWER", "target": reg_a["clientId"],
                     "answer": {"type": "answer", "sdp": "v=0"}})
    got = await expect_type(alice, "ANSWER_RECEIVED")
    assert got["from"] == reg_b["clientId"] and got["answer"]["type"] == "answer"
    candidate = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.2 5000 typ host",
                 "sdpMLineIndex": 0, "sdpMid": "0"}
    await send(bob, {"type": "ICE_CANDIDATE", "target": reg_a["clientId"],
                     "candidate": candidate})
    got = await expect_type(alice, "ICE_CANDIDATE_RECEIVED")
    assert got["candidate"] == candidate and got["from"] == reg_b["clientId"]


async def test_list_peers(base):
    _alice, reg_a = await native(base, room="lp")
    bob, _reg_b = await native(base, room="lp")
    await send(bob, {"type": "LIST_PEERS"})
    frame = await expect_type(bob, "PEER_LIST")
    assert frame["peers"] == [{"id": reg_a["clientId"], "callsign": "GUEST",
                               "hasLicense": False}]


async def test_unknown_target_is_an_error_and_the_connection_is_kept(base):
    alice, _reg_a = await native(base, room="u")
    await send(alice, {"type": "OFFER", "target": "nobody", "offer": {}})
    frame = await expect_type(alice, "ERROR")
    assert frame["error"] == "unknown_target" and "nobody" in frame["details"]
    await send(alice, {"type": "OFFER", "offer": {}})
    assert (await expect_type(alice, "ERROR"))["error"] == "invalid_message"
    await send(alice, {"type": "LIST_PEERS"})
    await expect_type(alice, "PEER_LIST")


async def test_invalid_json_unknown_type_and_non_objects_answer_errors_connection_kept(base):
    ws = await ws_connect(f"{base}/ws/signal")
    await send(ws, "{not json")
    assert (await expect_type(ws, "ERROR"))["error"] == "invalid_json"
    await send(ws, {"type": "SHOUT"})
    frame = await expect_type(ws, "ERROR")
    assert frame["error"] == "unknown_type" and "REGISTER" in frame["details"]
    await send(ws, "[1, 2]")
    assert (await expect_type(ws, "ERROR"))["error"] == "invalid_message"
    await send(ws, {"type": "REGISTER"})
    await expect_type(ws, "REGISTERED")


async def test_relay_before_register_and_register_twice_are_errors(base):
    ws = await ws_connect(f"{base}/ws/signal")
    await send(ws, {"type": "OFFER", "target": "x", "offer": {}})
    assert (await expect_type(ws, "ERROR"))["error"] == "not_registered"
    await send(ws, {"type": "LIST_PEERS"})
    assert (await expect_type(ws, "ERROR"))["error"] == "not_registered"
    await send(ws, {"type": "REGISTER"})
    assert (await expect_type(ws, "REGISTERED"))["room"] == "lobby"
    await send(ws, {"type": "REGISTER"})
    assert (await expect_type(ws, "ERROR"))["error"] == "already_registered"


@pytest.mark.parametrize(("fields", "code"), [
    ({"callsign": "no spaces"}, "invalid_callsign"),
    ({"callsign": 5}, "invalid_callsign"),
    ({"room": "a b"}, "invalid_room"),
    ({"room": "x" * 65}, "invalid_room"),
    ({"certificate": "not a pem", "nonce": "n", "signature": "AA=="}, None),
])
async def test_bad_register_fields_answer_an_error_and_allow_a_retry(base, fields, code):
    ws = await ws_connect(f"{base}/ws/signal")
    await send(ws, {"type": "REGISTER", **fields})
    frame = await expect_type(ws, "ERROR")
    if code:
        assert frame["error"] == code
    assert frame["details"]
    await send(ws, {"type": "REGISTER"})
    await expect_type(ws, "REGISTERED")


async def test_rooms_scope_presence_and_relay(base):
    alice, reg_a = await native(base, room="one")
    bob, _reg_b = await native(base, room="two")
    await silent(alice, 0.3)  # bob joined another room
    await send(bob, {"type": "OFFER", "target": reg_a["clientId"], "offer": {}})
    assert (await expect_type(bob, "ERROR"))["error"] == "unknown_target"
    await silent(alice, 0.2)


async def test_a_full_room_answers_room_full(base):
    for _ in range(3):
        await native(base, room="small")
    ws = await ws_connect(f"{base}/ws/signal")
    await send(ws, {"type": "REGISTER", "room": "small"})
    frame = await expect_type(ws, "ERROR")
    assert frame["error"] == "room_full" and "small" in frame["details"]
    await send(ws, {"type": "REGISTER", "room": "other"})  # still connected, can go elsewhere
    await expect_type(ws, "REGISTERED")


async def test_at_most_the_ice_candidate_limit_per_peer_then_errors_then_1008(base):
    alice, _ = await native(base, room="ice")
    bob, reg_b = await native(base, room="ice")
    await expect_type(alice, "PEER_JOINED")
    for n in range(3):
        await send(alice, {"type": "ICE_CANDIDATE", "target": reg_b["clientId"],
                           "candidate": {"n": n}})
    for _ in range(3):
        await expect_type(bob, "ICE_CANDIDATE_RECEIVED")
    await send(alice, {"type": "ICE_CANDIDATE", "target": reg_b["clientId"],
                       "candidate": {"n": 3}})
    frame = await expect_type(alice, "ERROR")
    assert frame["error"] == "too_many_candidates" and "3" in frame["details"]
    await silent(bob, 0.2)
    for _ in range(3):  # warnings 2, 3, 4: closed for abuse
        await send(alice, {"type": "ICE_CANDIDATE", "target": reg_b["clientId"],
                           "candidate": {}})
    assert await closed(alice) == 1008
    assert (await expect_type(bob, "PEER_LEFT"))["peerId"]


async def test_idle_clients_are_closed_and_heartbeat_keeps_them(base):
    idle, _ = await native(base, room="idle")
    beating, _ = await native(base, room="beat")
    started = time.monotonic()

    async def beat() -> None:
        while True:
            await send(beating, {"type": "HEARTBEAT"})
            await asyncio.sleep(0.5)

    task = asyncio.create_task(beat())
    try:
        assert await closed(idle, timeout=8) == 1001
        assert time.monotonic() - started >= 1.5
        await send(beating, {"type": "PING"})
        assert await recv(beating) == {"type": "PONG"}
    finally:
        task.cancel()


async def test_a_frame_over_64_kib_closes_with_1009(base):
    alice, reg = await native(base, room="big")
    await send(alice, {"type": "OFFER", "target": reg["clientId"], "offer": "a" * 65000})
    await expect_type(alice, "OFFER_RECEIVED")  # to oneself, under the limit
    await send(alice, {"type": "OFFER", "target": reg["clientId"], "offer": "é" * 33000})
    assert await closed(alice) == 1009  # 66,000 bytes in UTF-8, 33,000 characters
