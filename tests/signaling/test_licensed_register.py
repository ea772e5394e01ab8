"""Licensed REGISTER on `/ws/signal` against a real daphne whose database holds the trust roots
and the blacklist: `hasLicense` is true only for a certificate that chains to a trusted root, is
not blacklisted, matches the callsign, and whose key signed a fresh single-use station nonce.
Every other attempt is an ERROR with the documented code, and the connection stays usable as a
guest (`hasLicense: false`)."""

from __future__ import annotations

import base64

import pytest

from certificates.services import nonce_issue
from tests.certificates import pki
from tests.signaling.conftest import module_daphne
from tests.signaling.stationdb import blacklist, trust_roots
from tests.signaling.wsclient import expect_type, native, send, silent, ws_connect

pytestmark = pytest.mark.integration

PREFIX = b"meshsite-signal-register:"

station = module_daphne()


class People:
    """bob (Ed25519, DL1BOB), carol (EC, G4CAR), alice (LoTW RSA, W1AW) chain to trusted roots;
    eve's certificate and frank's intermediate are blacklisted; dave's root is not trusted."""

    def __init__(self) -> None:
        bob_root, self.bob = pki.meshsite_chain("DL1BOB", "ed25519")
        carol_root, self.carol = pki.meshsite_chain("G4CAR", "ec")
        eve_root, self.eve = pki.meshsite_chain("M0EVE", "ed25519")
        frank_root, self.frank = pki.meshsite_chain("F4FRK", "ed25519")
        _dave_root, self.dave = pki.meshsite_chain("N0DAV", "ed25519")
        self.alice = pki.lotw_user("W1AW")
        self.roots = [bob_root, carol_root, eve_root, frank_root, pki.lotw_root()]


@pytest.fixture(scope="module")
def people(station) -> People:
    people = People()
    trust_roots(station, *(root.pem for root in people.roots))
    blacklist(station, pki.fingerprint(people.eve.cert))
    blacklist(station, pki.fingerprint(people.frank.chain[0]))  # the intermediate
    return people


@pytest.fixture
def base(station) -> str:
    return station.ws_url


async def station_nonce(ws) -> str:
    await send(ws, {"type": "NONCE"})
    frame = await expect_type(ws, "NONCE")
    assert isinstance(frame["nonce"], str) and len(frame["nonce"]) >= 16
    return frame["nonce"]


def register_frame(who: pki.Identity, nonce: str, *, callsign: str | None = None,
                   signer: pki.Identity | None = None, message: bytes | None = None,
                   room: str = "licensed") -> dict:
    signature = (signer or who).sign(PREFIX + nonce.encode() if message is None else message)
    frame = {"type": "REGISTER", "room": room, "certificate": who.pem, "chain": who.chain_pem,
             "nonce": nonce, "signature": signature}
    if callsign is not None:
        frame["callsign"] = callsign
    return frame


async def refused(base: str, frame_for, code: str, room: str = "licensed") -> None:
    """A REGISTER built by `frame_for(nonce)` is refused with `code`; the socket then registers
    as a guest, without a license, and nobody in the room heard of the refused attempt."""
    watcher, _ = await native(base, room=room)
    ws = await ws_connect(f"{base}/ws/signal")
    nonce = await station_nonce(ws)
    await send(ws, frame_for(nonce))
    error = await expect_type(ws, "ERROR")
    assert error["error"] == code, error
    assert error["details"]
    await silent(watcher, 0.2)
    await send(ws, {"type": "REGISTER", "room": room})
    registered = await expect_type(ws, "REGISTERED")
    assert registered["hasLicense"] is False and registered["callsign"] == "GUEST"
    joined = await expect_type(watcher, "PEER_JOINED")
    assert joined["peer"]["hasLicense"] is False


@pytest.mark.parametrize("who", ["bob", "carol", "alice"])
async def test_a_trusted_certificate_and_a_signed_nonce_register_with_license(base, people,
                                                                              who):
    identity: pki.Identity = getattr(people, who)
    callsign = {"bob": "DL1BOB", "carol": "G4CAR", "alice": "W1AW"}[who]
    room = f"lic-{who}"
    guest, _ = await native(base, room=room)
    ws = await ws_connect(f"{base}/ws/signal")
    nonce = await station_nonce(ws)
    await send(ws, register_frame(identity, nonce, callsign=callsign.lower(), room=room))
    registered = await expect_type(ws, "REGISTERED")
    assert registered["hasLicense"] is True and registered["callsign"] == callsign
    me = {"id": registered["clientId"], "callsign": callsign, "hasLicense": True}
    # Peers see the license: the one already there, one who comes later, and LIST_PEERS.
    assert (await expect_type(guest, "PEER_JOINED"))["peer"] == me
    late, late_registered = await native(base, room=room)
    assert me in late_registered["peers"]
    await send(late, {"type": "LIST_PEERS"})
    assert me in (await expect_type(late, "PEER_LIST"))["peers"]


async def test_the_callsign_may_be_left_to_the_certificate(base, people):
    ws = await ws_connect(f"{base}/ws/signal")
    nonce = await station_nonce(ws)
    await send(ws, register_frame(people.bob, nonce))  # no callsign: the certificate's
    registered = await expect_type(ws, "REGISTERED")
    assert registered["hasLicense"] is True and registered["callsign"] == "DL1BOB"


async def test_a_licensed_callsign_is_a_relay_target_a_claimed_one_is_not(base, people):
    ws = await ws_connect(f"{base}/ws/signal")
    nonce = await station_nonce(ws)
    await send(ws, register_frame(people.carol, nonce, callsign="G4CAR", room="calls"))
    carol = await expect_type(ws, "REGISTERED")
    # A callsign without a certificate is shown as sent, unlicensed, and is no relay target.
    pretender, fake = await native(base, room="calls", callsign="K1ABC")
    assert fake["callsign"] == "K1ABC" and fake["hasLicense"] is False
    assert (await expect_type(ws, "PEER_JOINED"))["peer"]["hasLicense"] is False
    await send(pretender, {"type": "OFFER", "target": "G4CAR", "offer": {"sdp": "v=0"}})
    got = await expect_type(ws, "OFFER_RECEIVED")
    assert got["from"] == fake["clientId"] and got["fromCallsign"] == "K1ABC"
    await send(ws, {"type": "ANSWER", "target": "K1ABC", "answer": {"sdp": "v=0"}})
    assert (await expect_type(ws, "ERROR"))["error"] == "unknown_target"
    await send(ws, {"type": "ANSWER", "target": fake["clientId"], "answer": {}})
    got = await expect_type(pretender, "ANSWER_RECEIVED")
    assert got["from"] == carol["clientId"] and got["fromCallsign"] == "G4CAR"


@pytest.mark.parametrize("case", ["wrong_key", "no_prefix", "other_nonce", "not_base64",
                                  "no_signature"])
async def test_a_bad_proof_is_refused_with_bad_proof(base, people, case):
    def frame_for(nonce: str) -> dict:
        if case == "wrong_key":  # carol signs the right message for bob's certificate
            return register_frame(people.bob, nonce, callsign="DL1BOB", signer=people.carol)
        if case == "no_prefix":
            return register_frame(people.bob, nonce, message=nonce.encode())
        if case == "other_nonce":
            return register_frame(people.bob, nonce, message=PREFIX + b"x" + nonce.encode())
        frame = register_frame(people.bob, nonce)
        if case == "not_base64":
            frame["signature"] = "not base64 at all!"
        else:
            del frame["signature"]
        return frame

    await refused(base, frame_for, "bad_proof", room=f"proof-{case}")


async def test_a_nonce_works_once_even_for_a_failed_attempt(base, people):
    first = await ws_connect(f"{base}/ws/signal")
    nonce = await station_nonce(first)
    frame = register_frame(people.bob, nonce)
    await send(first, frame)
    assert (await expect_type(first, "REGISTERED"))["hasLicense"] is True
    replay = await ws_connect(f"{base}/ws/signal")
    await send(replay, frame)  # the same nonce and signature, captured and sent again
    error = await expect_type(replay, "ERROR")
    assert error["error"] == "bad_nonce" and "NONCE" in error["details"]
    # A refused attempt burns its nonce too: no second try with a better signature.
    nonce = await station_nonce(replay)
    await send(replay, register_frame(people.bob, nonce, signer=people.carol))
    assert (await expect_type(replay, "ERROR"))["error"] == "bad_proof"
    await send(replay, register_frame(people.bob, nonce))
    assert (await expect_type(replay, "ERROR"))["error"] == "bad_nonce"
    nonce = await station_nonce(replay)
    await send(replay, register_frame(people.bob, nonce))
    assert (await expect_type(replay, "REGISTERED"))["hasLicense"] is True


@pytest.mark.parametrize("source", ["invented", "other_purpose"])
async def test_a_nonce_the_station_did_not_issue_for_register_is_bad_nonce(base, people,
                                                                           source):
    nonce = ("A" * 32 if source == "invented"
             else nonce_issue(purpose="claim", ttl=60))  # same Redis, another purpose

    def frame_for(_issued: str) -> dict:
        return register_frame(people.bob, nonce)

    await refused(base, frame_for, "bad_nonce", room=f"nonce-{source}")


async def test_a_blacklisted_certificate_is_refused(base, people):
    await refused(base, lambda nonce: register_frame(people.eve, nonce, callsign="M0EVE"),
                  "blacklisted", room="bl-leaf")


async def test_a_certificate_under_a_blacklisted_intermediate_is_refused(base, people):
    await refused(base, lambda nonce: register_frame(people.frank, nonce, callsign="F4FRK"),
                  "blacklisted", room="bl-ca")


async def test_a_callsign_other_than_the_certificates_is_refused(base, people):
    await refused(base, lambda nonce: register_frame(people.bob, nonce, callsign="W1AW"),
                  "callsign_mismatch", room="mismatch")


async def test_a_chain_to_an_untrusted_root_is_refused(base, people):
    await refused(base, lambda nonce: register_frame(people.dave, nonce, callsign="N0DAV"),
                  "untrusted_root", room="untrusted")


async def test_a_certificate_that_is_not_pem_is_refused(base, people):
    def frame_for(nonce: str) -> dict:
        frame = register_frame(people.bob, nonce)
        frame["certificate"] = base64.b64encode(b"garbage").decode()
        return frame

    await refused(base, frame_for, "malformed", room="garbage")


async def test_the_chain_must_be_a_list_of_pem(base, people):
    def frame_for(nonce: str) -> dict:
        frame = register_frame(people.bob, nonce)
        frame["chain"] = [1, 2]
        return frame

    await refused(base, frame_for, "bad_certificate", room="badchain")
