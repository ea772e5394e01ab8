"""Mesh messages over RF (mesh/rf_codec.py): CBOR with the shared compression dictionary
round-trips a signed envelope so its signature still verifies, and is much smaller than the
JSON; anything marked encrypted is refused; fragments fit the 256-byte information field;
reassembly survives loss, reordering and repeats, asks for exactly the missing fragments, and
gives up in time."""

from __future__ import annotations

import json
import random

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh import protocol, rf_codec
from mesh.rf_codec import (
    BeaconInfo,
    EncryptedRefused,
    Fragment,
    Nack,
    Reassembler,
    RfCodecError,
    SentMessages,
)

KEY = ed25519.Ed25519PrivateKey.generate()


def envelope(payload: dict, type_: str = "ROUTE_UPDATE") -> dict:
    return protocol.build_envelope(type_=type_, sender="ab" * 16, payload=payload,
                                   sign=KEY.sign, ttl=10)


def test_signed_envelope_round_trips_and_still_verifies() -> None:
    original = envelope({"updates": [{"destination": "cd" * 16, "seqno": 7, "metric": 256}]})
    decoded = rf_codec.decode_message(rf_codec.encode_message(original))
    assert decoded == original
    checked = protocol.check_envelope(
        decoded, expected_sender="ab" * 16, window_ms=120_000,
        verify=lambda sig, msg: KEY.public_key().verify(sig, msg))
    assert checked.payload["updates"][0]["seqno"] == 7


def test_compact_encoding_is_much_smaller_than_json() -> None:
    original = envelope({"updates": [{"destination": "cd" * 16, "seqno": 7, "metric": 256}]})
    as_json = len(protocol.canonical_json(original))
    on_air = len(rf_codec.encode_message(original))
    assert on_air < as_json * 0.6, (on_air, as_json)


def test_values_that_only_look_packable_survive() -> None:
    odd = {"type": "PING", "id": "ABCDEF", "re": "ab  cd", "sig": "not base64!", "payload": {}}
    assert rf_codec.decode_message(rf_codec.encode_message(odd)) == odd
    padded = {"type": "PING", "sig": "YWJj", "id": "", "payload": {"x": 1.5, "y": None}}
    assert rf_codec.decode_message(rf_codec.encode_message(padded)) == padded


@pytest.mark.parametrize("payload", [
    {"encrypted": True, "body": "x"},
    {"envelopes": [{"to": "K1ABC", "ciphertext": "q83v"}]},
    {"deep": {"deeper": {"encrypted": 1}}},
])
def test_anything_marked_encrypted_is_refused(payload: dict) -> None:
    with pytest.raises(EncryptedRefused, match="Part 97 forbids encrypted"):
        rf_codec.encode_message(envelope(payload, type_="MAILBOX_DELIVER"))


def test_false_markers_are_not_encryption() -> None:
    original = envelope({"encrypted": False, "ciphertext": ""})
    assert rf_codec.decode_message(rf_codec.encode_message(original)) == original


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"), (b"\x07abc", "unknown message format"), (b"\x01\xff\xff", "decompress"),
    (b"\x00\xff", "not CBOR"), (b"\x00" + bytes([0x83, 1, 2, 3]), "not a map"),
])
def test_bad_messages_are_named(data: bytes, message: str) -> None:
    with pytest.raises(RfCodecError, match=message):
        rf_codec.decode_message(data)


def test_decompression_bomb_is_refused() -> None:
    import zlib
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                                  rf_codec.ZDICT)
    bomb = compressor.compress(b"\x00" * (rf_codec.MAX_MESSAGE * 4)) + compressor.flush()
    with pytest.raises(RfCodecError, match="more than"):
        rf_codec.decode_message(b"\x01" + bomb)


# --- fragments ------------------------------------------------------------------------------

def test_fragments_fit_the_information_field_and_parse_back() -> None:
    message = bytes(random.Random(1).randrange(256) for _ in range(1000))
    infos = rf_codec.fragment(message, msg=513)
    assert len(infos) == 4 and all(len(info) <= 256 for info in infos)
    parsed = [rf_codec.parse_info(info) for info in infos]
    assert parsed[0] == Fragment(513, 0, 4, message[:250])
    assert b"".join(p.chunk for p in parsed) == message  # type: ignore[union-attr]


def test_too_large_a_message_is_refused() -> None:
    with pytest.raises(RfCodecError, match="at most 255 fit"):
        rf_codec.fragment(b"x" * 250 * 256, msg=1)


@pytest.mark.parametrize(("info", "expected"), [
    (b"!4903.50N/07201.75W-Test", None),  # APRS position: not ours, quietly ignored
    (b"", None),
    (bytes([rf_codec.MAGIC, 2, 0, 9, 1, 3]), Nack(9, (1, 3))),
    (bytes([rf_codec.MAGIC, 3]) + b"beacon", BeaconInfo(b"beacon")),
])
def test_parse_info(info: bytes, expected: object) -> None:
    assert rf_codec.parse_info(info) == expected


@pytest.mark.parametrize(("info", "message"), [
    (bytes([rf_codec.MAGIC, 1, 0]), "shorter than its header"),
    (bytes([rf_codec.MAGIC, 1, 0, 1, 3, 3]), "fragment 3 of 3 is impossible"),
    (bytes([rf_codec.MAGIC, 2, 0, 1]), "names no missing"),
    (bytes([rf_codec.MAGIC, 9]), "unknown mesh frame kind 0x09"),
])
def test_malformed_mesh_frames_are_named(info: bytes, message: str) -> None:
    with pytest.raises(RfCodecError, match=message):
        rf_codec.parse_info(info)


# --- reassembly and selective repeat --------------------------------------------------------

def test_lost_fragments_are_asked_for_and_repeated() -> None:
    sent = SentMessages()
    message = bytes(range(256)) * 4
    msg, infos = sent.add(message, now=0.0)
    receiver = Reassembler(gap=10, timeout=300)
    for index in (0, 2, 4):  # 1 and 3 lost on the air
        frag = rf_codec.parse_info(infos[index])
        assert receiver.add("K1ABC-10", frag, now=1.0) is None  # type: ignore[arg-type]
    assert receiver.due_nacks(now=5.0) == []  # not quiet long enough yet
    ((sender, nacked, missing),) = receiver.due_nacks(now=11.0)
    assert (sender, nacked, missing) == ("K1ABC-10", msg, [1, 3])
    assert receiver.due_nacks(now=12.0) == []  # once per gap
    nack = rf_codec.parse_info(rf_codec.nack_info(msg, missing))
    repeats = sent.repeat(nack)  # type: ignore[arg-type]
    assert repeats == [infos[1], infos[3]]
    result = None
    for info in repeats:
        result = receiver.add("K1ABC-10", rf_codec.parse_info(info), now=13.0)  # type: ignore[arg-type]
    assert result == message
    assert receiver.add("K1ABC-10", rf_codec.parse_info(infos[0]), now=14.0) is None  # repeat
    assert receiver.partials == {}


def test_nacks_back_off_and_a_message_never_completed_is_dropped() -> None:
    receiver = Reassembler(gap=10, timeout=100, max_nacks=2)
    receiver.add("K1ABC-10", Fragment(1, 0, 2, b"a"), now=0.0)
    assert len(receiver.due_nacks(now=10.0)) == 1
    assert receiver.due_nacks(now=20.0) == []  # the second waits two gaps
    assert len(receiver.due_nacks(now=30.0)) == 1
    assert receiver.due_nacks(now=70.0) == []  # no more asking
    assert receiver.partials
    receiver.due_nacks(now=101.0)
    assert receiver.partials == {} and receiver.dropped == 1


def test_senders_and_message_numbers_do_not_mix() -> None:
    receiver = Reassembler()
    assert receiver.add("A-1", Fragment(5, 0, 2, b"a0"), 0) is None
    assert receiver.add("B-1", Fragment(5, 1, 2, b"b1"), 0) is None
    assert receiver.add("A-1", Fragment(6, 0, 1, b"solo"), 0) == b"solo"
    assert receiver.add("B-1", Fragment(5, 0, 2, b"b0"), 0) == b"b0b1"
    assert receiver.add("A-1", Fragment(5, 1, 2, b"a1"), 0) == b"a0a1"


def test_partials_are_bounded() -> None:
    receiver = Reassembler(max_partials=4)
    for number in range(10):
        receiver.add("A-1", Fragment(number, 0, 2, b"x"), now=float(number))
    assert len(receiver.partials) == 4 and receiver.dropped == 6


@settings(max_examples=150, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), st.one_of(
           st.integers(-2**40, 2**40), st.text(max_size=300), st.booleans(), st.none()),
           max_size=12),
       loss=st.floats(0, 0.6), seed=st.integers(0, 1000))
def test_any_message_arrives_whole_over_a_lossy_channel(payload: dict, loss: float,
                                                        seed: int) -> None:
    rng = random.Random(seed)
    original = json.loads(json.dumps(envelope(payload)))
    sent = SentMessages()
    _msg, infos = sent.add(rf_codec.encode_message(original), now=0.0)
    receiver = Reassembler(gap=1, max_nacks=50, timeout=1000)
    now, result = 0.0, None
    on_air = [info for info in infos]
    rng.shuffle(on_air)
    while result is None and now < 500:
        for info in on_air:
            if rng.random() >= loss:
                result = receiver.add("A-1", rf_codec.parse_info(info), now) or result  # type: ignore[arg-type]
        now += 1.0
        on_air = []
        for _, number, missing in receiver.due_nacks(now):
            on_air += sent.repeat(Nack(number, tuple(missing)))
        if result is None and not on_air and not receiver.partials:
            on_air = infos  # everything was lost: the sender's own retry
    assert result is not None
    assert rf_codec.decode_message(result) == original


# --- the ID beacon --------------------------------------------------------------------------

def _beacon(**overrides: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public = KEY.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    fields = {"public_key": public, "callsign": "W1AW", "fingerprint": "ab" * 32,
              "digest": b"\x01\x02\x03\x04\x05\x06", "ts": 1_000_000, "sign": KEY.sign}
    fields.update(overrides)
    return rf_codec.beacon_encode(**fields)  # type: ignore[arg-type]


def test_beacon_round_trip_names_the_station() -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    body = _beacon()
    assert len(body) + 2 <= 256
    beacon = rf_codec.beacon_decode(body, now_ms=1_000_500, window_ms=600_000)
    public = KEY.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    assert beacon.station_id == hashlib.sha256(public).hexdigest()[:32]
    assert (beacon.callsign, beacon.fingerprint, beacon.digest) == (
        "W1AW", "ab" * 32, b"\x01\x02\x03\x04\x05\x06")


def test_forged_stale_or_malformed_beacons_are_refused() -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(RfCodecError, match="signature does not verify"):
        rf_codec.beacon_decode(_beacon(sign=other.sign), now_ms=1_000_000, window_ms=600_000)
    import cbor2
    tampered = cbor2.loads(_beacon())
    tampered["c"] = "K1EVIL"
    with pytest.raises(RfCodecError, match="signature does not verify"):
        rf_codec.beacon_decode(cbor2.dumps(tampered), now_ms=1_000_000, window_ms=600_000)
    with pytest.raises(RfCodecError, match="from now"):
        rf_codec.beacon_decode(_beacon(), now_ms=1_000_000 + 700_000, window_ms=600_000)
    with pytest.raises(RfCodecError, match="not CBOR"):
        rf_codec.beacon_decode(b"\xff\xff", now_ms=0, window_ms=1)
    with pytest.raises(RfCodecError, match="missing or of the wrong type"):
        rf_codec.beacon_decode(cbor2.dumps({"v": 1, "k": b"short"}), now_ms=0, window_ms=1)


def test_base64_payload_fields_travel_as_bytes_and_come_back_exactly() -> None:
    import base64

    body = bytes(range(256)) * 8
    original = envelope({"data": base64.b64encode(body).decode(), "length": len(body),
                         "nested": [{"sig": base64.b64encode(b"xy").decode()}],
                         "m": "not base64 at all!", "text": base64.b64encode(b"kept").decode()})
    encoded = rf_codec.encode_message(original)
    assert len(encoded) < len(body) + 200  # not the third more that base64 costs
    assert rf_codec.decode_message(encoded) == original


def test_a_message_partly_heard_is_being_received_until_complete_or_given_up() -> None:
    receiver = Reassembler(gap=10, timeout=100, max_nacks=1)
    assert not receiver.receiving("A-1", 0.0)
    receiver.add("A-1", Fragment(7, 0, 2, b"a"), now=0.0)
    assert receiver.receiving("A-1", 5.0)
    assert not receiver.receiving("B-1", 5.0)  # another sender
    assert len(receiver.due_nacks(now=10.0)) == 1
    assert not receiver.receiving("A-1", 11.0)  # asked as often as it will: not waited for
    receiver = Reassembler(gap=10, timeout=100)
    receiver.add("A-1", Fragment(7, 0, 2, b"a"), now=0.0)
    assert receiver.add("A-1", Fragment(7, 1, 2, b"b"), now=1.0) == b"ab"
    assert not receiver.receiving("A-1", 1.0)
