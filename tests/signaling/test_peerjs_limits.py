"""PeerJS limits not covered elsewhere, against a real daphne: the total queued bytes for absent
ids, the native client cap, ids and tokens over 128 characters, a LEAVE (and an OFFER) to a
local socket that is closing, the cap on candidate destinations, a non-default key and path."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
import urllib.request

import pytest
from django.conf import settings
from websockets.exceptions import InvalidStatus

from tests.harness import DaphneProcess, free_port, station_env
from tests.signaling.conftest import FAST, module_daphne
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

pytestmark = pytest.mark.integration

QUEUE_BYTES = 3000
station = module_daphne(
    MESHSITE_PEERJS_QUEUE_TOTAL_BYTES=str(QUEUE_BYTES),
    MESHSITE_PEERJS_QUEUE_PER_ID="100",
    MESHSITE_PEERJS_EXPIRE_TIMEOUT="60",  # nothing expires during a test: only the cap acts
    MESHSITE_SIGNALING_MAX_CLIENTS="2",
    MESHSITE_SIGNALING_RATE="0",
    MESHSITE_SIGNALING_MAX_WARNINGS="3",
)


@pytest.fixture
def base(station) -> str:
    return station.ws_url


def offer(n: int) -> dict:
    return {"type": "OFFER", "dst": f"absent-{n}", "payload": {"n": n, "sdp": "x" * 1000}}


async def test_queued_bytes_in_all_are_capped_and_the_sender_told_at_once(base):
    alice = await peerjs(base, "alice", "ta")
    for n in range(2):  # about 1,070 bytes each: two fit under 3,000 in all
        await send(alice, offer(n))
    await silent(alice, 0.3)
    await send(alice, offer(2))  # a third id: the queues in all would pass the cap
    assert await recv(alice) == {"type": "EXPIRE", "src": "absent-2", "dst": "alice"}
    late = await peerjs(base, "absent-0", "t0")  # what was queued is intact, and taken
    assert (await recv(late))["payload"]["n"] == 0
    await send(alice, offer(3))  # the bytes taken are free again
    await silent(alice, 0.3)
    late3 = await peerjs(base, "absent-3", "t3")
    assert (await recv(late3))["payload"]["n"] == 3


async def test_native_clients_are_capped_across_the_station_and_a_place_frees(base):
    first, _ = await native(base, room="cap")
    _second, _ = await native(base, room="cap")
    third = await ws_connect(f"{base}/ws/signal")
    await send(third, {"type": "REGISTER", "room": "other"})
    frame = await expect_type(third, "ERROR")
    assert frame["error"] == "server_full" and "MESHSITE_SIGNALING_MAX_CLIENTS" in frame["details"]
    await send(third, {"type": "PING"})  # the connection is kept: it may try again
    assert await recv(third) == {"type": "PONG"}
    await first.close()
    deadline = time.monotonic() + 5
    while True:
        await send(third, {"type": "REGISTER", "room": "other"})
        frame = await recv(third)
        if frame["type"] == "REGISTERED":
            break
        assert frame["error"] == "server_full" and time.monotonic() < deadline, frame
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("peer_id", "token"), [("i" * 129, "t"), ("a", "t" * 129)])
async def test_ids_and_tokens_over_128_characters_are_refused(base, peer_id, token):
    ws = await peerjs(base, peer_id, token, expect_open=False)
    frame = await recv(ws)
    assert frame["type"] == "ERROR" and "at most 128 characters" in frame["payload"]["msg"]
    await closed(ws)


async def test_ids_and_tokens_of_exactly_128_characters_are_accepted(base):
    ws = await peerjs(base, "i" * 128, "t" * 128)  # OPEN
    await ws.close()


def _zombie(port: int, peer_id: str) -> socket.socket:
    """A PeerJS client that registers, then neither reads nor answers anything."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /peerjs/peerjs?key=peerjs&id={peer_id}&token=tz HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b'{"type":"OPEN"}' not in data:
        data += sock.recv(4096)
    return sock


def _close_frame_arrives(sock: socket.socket, timeout: float = 5) -> None:
    sock.settimeout(timeout)
    data = sock.recv(4096)
    assert data[:1] == b"\x88", data  # a close frame, which the zombie never answers


@pytest.mark.parametrize("kind", ["LEAVE", "OFFER"])
async def test_a_message_to_a_local_socket_being_closed_answers_leave_at_once(station, base,
                                                                               kind):
    """The id is still held by a socket of this process that the station is closing (an
    admin's disconnect here; the alive timeout does the same): as the anchor when it cannot
    write to the destination, the sender gets LEAVE from it, nothing is queued for it."""
    from signaling.services import client_disconnect

    zombie = _zombie(station.port, f"zombie-{kind}")
    try:
        alice = await peerjs(base, f"alice-{kind}", "ta")
        assert client_disconnect(protocol="peerjs", peer_id=f"zombie-{kind}")
        _close_frame_arrives(zombie)
        await send(alice, {"type": kind, "dst": f"zombie-{kind}", "payload": {}})
        assert await recv(alice, timeout=0.8) == {
            "type": "LEAVE", "src": f"zombie-{kind}", "dst": f"alice-{kind}"}
    finally:
        zombie.close()


async def test_candidates_to_more_than_1000_destinations_are_dropped_as_warnings(base):
    alice = await peerjs(base, "alice", "ta")
    bob = await peerjs(base, "bob", "tb")
    carol = await peerjs(base, "carol", "tc")
    for n in range(1000):  # to absent ids: each queue is one small message
        await alice.send(f'{{"type":"CANDIDATE","dst":"c{n}","payload":{{}}}}')
    await send(alice, {"type": "CANDIDATE", "dst": "bob", "payload": {"n": 1}})
    assert (await recv(bob, timeout=10))["payload"] == {"n": 1}  # the 1001st destination
    await send(alice, {"type": "CANDIDATE", "dst": "carol", "payload": {"n": 2}})
    await silent(carol, 0.5)  # past the cap: dropped
    await send(alice, {"type": "OFFER", "dst": "carol", "payload": {"n": 3}})
    assert (await recv(carol))["payload"] == {"n": 3}  # only candidates are capped
    await send(alice, {"type": "CANDIDATE", "dst": "carol", "payload": {}})
    await send(alice, {"type": "CANDIDATE", "dst": "bob", "payload": {}})
    assert await closed(alice) == 1008  # three warnings (MESHSITE_SIGNALING_MAX_WARNINGS)


@pytest.fixture
def custom(signaling_dir):
    """A daphne serving PeerJS under another key and path (ready once /api/status answers:
    the conftest's readiness check asks the default PeerJS path)."""
    env = station_env(signaling_dir, REDIS_URL=settings.REDIS_URL,
                      **{**FAST, "MESHSITE_PEERJS_KEY": "meshkey",
                         "MESHSITE_PEERJS_PATH": "/rtc/signal"})
    process = DaphneProcess(signaling_dir, port=free_port(), env=env).start()
    yield process
    process.stop()


async def test_a_non_default_key_and_path(custom):
    url = f"{custom.ws_url}/rtc/signal/peerjs?key=meshkey&id=alice&token=t&version=1.5.5"
    alice = await ws_connect(url)
    assert await recv(alice) == {"type": "OPEN"}
    wrong_key = await ws_connect(url.replace("key=meshkey", "key=peerjs"))
    assert await recv(wrong_key) == {"type": "ERROR",
                                     "payload": {"msg": "Invalid key provided"}}
    await closed(wrong_key)
    with pytest.raises(InvalidStatus):  # the default path is not served
        await ws_connect(f"{custom.ws_url}/peerjs/peerjs?key=meshkey&id=bob&token=t")
    with urllib.request.urlopen(f"{custom.url}/rtc/signal/meshkey/id", timeout=5) as response:
        assert response.status == 200 and len(response.read()) == 36
    with urllib.request.urlopen(f"{custom.url}/rtc/signal/", timeout=5) as response:
        assert b"PeerJS Server" in response.read()
