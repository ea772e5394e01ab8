"""PeerJS ids bound to licensed callsigns (`MESHSITE_PEERJS_ID_BINDING`, docs/signaling.md
"Licensed PeerJS ids") against real daphnes, one per mode, on the test session's Redis.

A licensed operator REGISTERs on `/ws/signal` with a certificate and a signed nonce, asks for
`PEERJS_TOKEN`, and opens the PeerJS socket with an id that names its callsign and that token.
With `callsigns` such ids need the token and every other id is free; with `licensed` only such
ids are accepted; with `off` (the default) ids are not checked."""

from __future__ import annotations

import urllib.request
import uuid

import pytest

from tests.certificates import pki
from tests.signaling.conftest import module_daphne
from tests.signaling.stationdb import off_loop, trust_roots
from tests.signaling.test_licensed_register import register_frame, station_nonce
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

callsigns_station = module_daphne(MESHSITE_PEERJS_ID_BINDING="callsigns")
licensed_station = module_daphne(MESHSITE_PEERJS_ID_BINDING="licensed")
default_station = module_daphne()

OFFER = {"sdp": {"type": "offer", "sdp": "v=0\r\n"}, "type": "data", "connectionId": "dc_1"}
# A uuid whose first group reads as a callsign (prefix `1a`, digit `2`, suffix `b3c4d`).
CALLSIGN_SHAPED_UUID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ONLY_LICENSED = ("This station only accepts ids of licensed operators: CALLSIGN or "
                 "CALLSIGN-suffix")


class People:
    """alice (W1AW) and bob (DL1BOB), each under a trusted Meshsite root."""

    def __init__(self) -> None:
        alice_root, self.alice = pki.meshsite_chain("W1AW", "ed25519")
        bob_root, self.bob = pki.meshsite_chain("DL1BOB", "ed25519")
        self.roots = [alice_root, bob_root]


@pytest.fixture(scope="module")
def people(callsigns_station) -> People:
    people = People()
    # Every daphne of the session shares one data dir: one database, so one trust store.
    trust_roots(callsigns_station, *(root.pem for root in people.roots))
    return people


async def peerjs_token(base: str, who: pki.Identity, callsign: str) -> str:
    """A licensed REGISTER on /ws/signal, then PEERJS_TOKEN: the token bound to `callsign`."""
    ws = await ws_connect(f"{base}/ws/signal")
    nonce = await station_nonce(ws)
    await send(ws, register_frame(who, nonce, callsign=callsign, room="pj-binding"))
    registered = await expect_type(ws, "REGISTERED")
    assert registered["hasLicense"] is True and registered["callsign"] == callsign
    await send(ws, {"type": "PEERJS_TOKEN"})
    frame = await expect_type(ws, "PEERJS_TOKEN")
    assert frame["callsign"] == callsign, frame
    assert isinstance(frame["token"], str) and len(frame["token"]) >= 16, frame
    return frame["token"]


async def refused_id(base: str, peer_id: str, token: str) -> str:
    """The PeerJS socket for `peer_id` gets an ERROR (no OPEN) and is closed (1000): its msg."""
    ws = await peerjs(base, peer_id, token, expect_open=False)
    frame = await recv(ws)
    assert frame["type"] == "ERROR" and set(frame) == {"type", "payload"}, frame
    assert await closed(ws) == 1000
    return frame["payload"]["msg"]


async def relay_both_ways(first, first_id: str, second, second_id: str) -> None:
    await send(first, {"type": "OFFER", "dst": second_id, "payload": OFFER})
    assert await recv(second) == {"type": "OFFER", "src": first_id, "dst": second_id,
                                  "payload": OFFER}
    await send(second, {"type": "ANSWER", "dst": first_id, "payload": {"sdp": "answer"}})
    assert await recv(first) == {"type": "ANSWER", "src": second_id, "dst": first_id,
                                 "payload": {"sdp": "answer"}}


def server_ids(station, count: int) -> list[str]:
    """`count` fresh ids from `GET {path}{key}/id`, as a PeerJS client without an id asks."""
    ids = []
    for _ in range(count):
        with urllib.request.urlopen(station.url + "/peerjs/peerjs/id", timeout=10) as response:
            ids.append(response.read().decode())
    return ids


# --- callsigns ------------------------------------------------------------------------------


@pytest.mark.parametrize("peer_id", ["W1AW-phone", "W1AW", "w1aw_tablet"])
async def test_callsigns_a_licensed_operator_opens_its_callsign_id_with_its_token(
        callsigns_station, people, peer_id):
    base = callsigns_station.ws_url
    token = await peerjs_token(base, people.alice, "W1AW")
    phone = await peerjs(base, peer_id, token)  # asserts the OPEN
    other_id = str(uuid.uuid4())
    other = await peerjs(base, other_id, "any-token")
    await relay_both_ways(phone, peer_id, other, other_id)


async def test_callsigns_a_bound_id_with_a_random_token_is_refused(callsigns_station, people):
    base = callsigns_station.ws_url
    msg = await refused_id(base, "W1AW-phone", "random-" + uuid.uuid4().hex)
    assert msg.startswith("The id 'W1AW-phone' belongs to the licensed operator W1AW:"), msg
    assert "token" in msg


async def test_callsigns_a_token_of_another_callsign_is_refused(callsigns_station, people):
    base = callsigns_station.ws_url
    bob_token = await peerjs_token(base, people.bob, "DL1BOB")
    msg = await refused_id(base, "W1AW-phone", bob_token)
    assert "W1AW" in msg and "DL1BOB" not in msg, msg
    # bob's token is good for bob's own ids.
    await peerjs(base, "DL1BOB-phone", bob_token)


async def test_callsigns_an_impostor_does_not_disturb_the_owner_of_the_id(callsigns_station,
                                                                           people):
    base = callsigns_station.ws_url
    token = await peerjs_token(base, people.alice, "W1AW")
    owner = await peerjs(base, "W1AW-phone", token)
    # Refused for the binding (not ID-TAKEN), and the owner keeps its id and its socket.
    msg = await refused_id(base, "W1AW-phone", "guessed")
    assert "W1AW" in msg, msg
    await silent(owner, 0.3)
    friend_id = str(uuid.uuid4())
    friend = await peerjs(base, friend_id, "ft")
    await relay_both_ways(friend, friend_id, owner, "W1AW-phone")


@pytest.mark.parametrize("peer_id", ["alice", "my-laptop", CALLSIGN_SHAPED_UUID])
async def test_callsigns_other_ids_need_no_bound_token(callsigns_station, peer_id):
    base = callsigns_station.ws_url
    first = await peerjs(base, peer_id, "whatever")
    second_id = str(uuid.uuid4())
    second = await peerjs(base, second_id, "tok")
    await relay_both_ways(first, peer_id, second, second_id)


async def test_callsigns_ids_the_station_hands_out_are_free(callsigns_station):
    """A PeerJS client without an id takes one from `GET {path}{key}/id`: those never need a
    bound token (a uuid's first group often reads as a callsign, e.g. `1a2b3c4d`)."""
    base = callsigns_station.ws_url
    for peer_id in await off_loop(server_ids, callsigns_station, 20):
        ws = await peerjs(base, peer_id, "tok", expect_open=False)
        frame = await recv(ws)
        assert frame == {"type": "OPEN"}, (peer_id, frame)
        await ws.close()


# --- PEERJS_TOKEN ---------------------------------------------------------------------------


@pytest.mark.parametrize("callsign", ["GUEST", "W1AW"])
async def test_peerjs_token_needs_a_licensed_register(callsigns_station, callsign):
    base = callsigns_station.ws_url
    unregistered = await ws_connect(f"{base}/ws/signal")
    await send(unregistered, {"type": "PEERJS_TOKEN"})
    error = await expect_type(unregistered, "ERROR")
    assert error["error"] == "not_licensed" and "certificate" in error["details"], error
    # A callsign claimed without a certificate is no license either; the socket stays usable.
    guest, registered = await native(base, room="pj-guest", callsign=callsign)
    assert registered["hasLicense"] is False
    await send(guest, {"type": "PEERJS_TOKEN"})
    error = await expect_type(guest, "ERROR")
    assert error["error"] == "not_licensed", error
    await send(guest, {"type": "PING"})
    assert await expect_type(guest, "PONG") == {"type": "PONG"}


# --- licensed -------------------------------------------------------------------------------


@pytest.mark.parametrize("peer_id", ["alice", CALLSIGN_SHAPED_UUID])
async def test_licensed_a_non_callsign_id_is_refused(licensed_station, peer_id):
    assert await refused_id(licensed_station.ws_url, peer_id, "tok") == ONLY_LICENSED


async def test_licensed_a_callsign_id_needs_its_token(licensed_station, people):
    base = licensed_station.ws_url
    msg = await refused_id(base, "W1AW-phone", "tok")
    assert "W1AW" in msg and "token" in msg, msg
    alice_token = await peerjs_token(base, people.alice, "W1AW")
    bob_token = await peerjs_token(base, people.bob, "DL1BOB")
    alice = await peerjs(base, "W1AW-phone", alice_token)
    bob = await peerjs(base, "DL1BOB", bob_token)
    await relay_both_ways(alice, "W1AW-phone", bob, "DL1BOB")


# --- off (the default) ----------------------------------------------------------------------


async def test_off_callsign_ids_take_any_token(default_station):
    base = default_station.ws_url
    phone = await peerjs(base, "W1AW-phone", "anything")
    bare = await peerjs(base, "W1AW", "random-" + uuid.uuid4().hex)
    await relay_both_ways(phone, "W1AW-phone", bare, "W1AW")
    plain = await peerjs(base, CALLSIGN_SHAPED_UUID, "tok")
    await relay_both_ways(plain, CALLSIGN_SHAPED_UUID, phone, "W1AW-phone")
