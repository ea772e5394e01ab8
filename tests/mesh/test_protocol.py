"""Envelopes: signature, sender, timestamp window, replay; bad frames give clear errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mesh import protocol
from mesh.protocol import ProtocolError, ReplayGuard

alice_key = ed25519.Ed25519PrivateKey.generate()
mallory_key = ed25519.Ed25519PrivateKey.generate()


def verify_with(key: ed25519.Ed25519PrivateKey):
    public = key.public_key()
    return lambda signature, message: public.verify(signature, message)


def envelope(**overrides):
    fields = {"type_": "CERT_SYNC", "sender": "alice", "payload": {"have": ["x"]},
              "sign": alice_key.sign, "ttl": 10}
    fields.update(overrides)
    return protocol.build_envelope(**fields)


def test_signed_envelope_round_trip():
    data = protocol.parse_frame(protocol.canonical_json(envelope()).decode())
    checked = protocol.check_envelope(data, expected_sender="alice",
                                      verify=verify_with(alice_key), window_ms=60_000)
    assert checked.type == "CERT_SYNC"
    assert checked.payload == {"have": ["x"]}
    assert checked.request is False


@pytest.mark.parametrize("field, value", [
    ("payload", {"have": ["y"]}), ("type", "BLACKLIST_UPDATE"), ("ttl", 3), ("ts", 1),
    ("re", "0" * 32), ("req", True),
])
def test_any_changed_field_breaks_the_signature(field, value):
    data = envelope(ts=protocol.now_ms())
    data[field] = value
    with pytest.raises(ProtocolError) as err:
        protocol.check_envelope(data, expected_sender="alice", verify=verify_with(alice_key),
                                window_ms=10**15)
    assert err.value.code == "bad_signature"


def test_signature_by_another_key_is_refused():
    data = envelope(sign=mallory_key.sign)
    with pytest.raises(ProtocolError) as err:
        protocol.check_envelope(data, expected_sender="alice", verify=verify_with(alice_key),
                                window_ms=60_000)
    assert err.value.code == "bad_signature"


def test_sender_must_be_the_linked_station():
    data = envelope(sender="mallory", sign=mallory_key.sign)
    with pytest.raises(ProtocolError) as err:
        protocol.check_envelope(data, expected_sender="alice", verify=verify_with(mallory_key),
                                window_ms=60_000)
    assert err.value.code == "wrong_sender"


def test_old_and_future_timestamps_are_refused():
    now = protocol.now_ms()
    for ts in (now - 120_001, now + 120_001):
        data = envelope(ts=ts)
        with pytest.raises(ProtocolError) as err:
            protocol.check_envelope(data, expected_sender="alice", verify=verify_with(alice_key),
                                    window_ms=120_000, now=now)
        assert err.value.code == "stale"


def test_replay_guard_refuses_a_seen_id_and_forgets_after_keep():
    guard = ReplayGuard(keep_ms=1000)
    assert guard.first_time("a" * 32, now=0)
    assert not guard.first_time("a" * 32, now=500)
    assert guard.first_time("a" * 32, now=2000)


@pytest.mark.parametrize("frame, code", [
    ("not json", "malformed"), ("[1, 2]", "malformed"), ('{"no": "type"}', "malformed"),
    (b"\xff\xfe", "malformed"), ("x" * (protocol.MAX_FRAME_BYTES + 1), "too_large"),
])
def test_bad_frames(frame, code):
    with pytest.raises(ProtocolError) as err:
        protocol.parse_frame(frame)
    assert err.value.code == code


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(id="xyz"), "32 lowercase hex"),
    (lambda d: d.update(ttl=-1), "ttl"),
    (lambda d: d.update(ttl=True), "ttl"),
    (lambda d: d.update(ts="now"), "ts"),
    (lambda d: d.update(payload=[1]), "payload"),
    (lambda d: d.update(sig="***"), "base64"),
    (lambda d: d.update(extra=1), "unknown envelope fields"),
])
def test_malformed_envelopes_say_what_is_wrong(mutate, words):
    data = envelope()
    mutate(data)
    with pytest.raises(ProtocolError) as err:
        protocol.check_envelope(data, expected_sender="alice", verify=verify_with(alice_key),
                                window_ms=60_000)
    assert words in err.value.detail


def test_handshake_proofs_are_bound_to_role_and_both_ids():
    base = protocol.proof_message("client", "n" * 20, "a", "b")
    assert base != protocol.proof_message("server", "n" * 20, "a", "b")
    assert base != protocol.proof_message("client", "n" * 20, "b", "a")
    assert base != protocol.proof_message("client", "m" * 20, "a", "b")


@pytest.mark.parametrize("fields", [
    {},
    {"re": "0" * 32, "request": False},
    {"request": True, "payload": {"data": "QUJD" * 11000, "note": "é \" \\ \u2028 ünïcode"}},
    {"payload": {"sig": "a nested sig", "ts": 5, "z": {"b": [1, 2, {"a": None}]}}},
])
def test_the_envelope_text_is_the_canonical_json_of_the_signed_envelope(fields):
    """The text sent is serialised once (head and tail around `sig`), and must be byte for
    byte what the canonical JSON of `build_envelope`'s envelope is: Ed25519 is deterministic,
    so the same fields give the same signature."""
    shared = {"type_": "FORWARD", "sender": "alice", "payload": {"have": ["x"]},
              "sign": alice_key.sign, "ttl": 10, "ts": 1_700_000_000_000,
              "message_id": "ab" * 16, **fields}
    message_id, text = protocol.envelope_text(**shared)
    assert message_id == "ab" * 16
    assert text == protocol.canonical_json(protocol.build_envelope(**shared)).decode()
    checked = protocol.check_envelope(protocol.parse_frame(text), expected_sender="alice",
                                      verify=verify_with(alice_key), window_ms=10**15)
    assert checked.payload == shared["payload"]
    assert checked.request is shared.get("request", False)


def test_the_envelope_text_is_signed_by_its_sender_only():
    _, text = protocol.envelope_text(type_="PING", sender="alice", payload={},
                                     sign=mallory_key.sign, ttl=10)
    with pytest.raises(ProtocolError) as err:
        protocol.check_envelope(protocol.parse_frame(text), expected_sender="alice",
                                verify=verify_with(alice_key), window_ms=60_000)
    assert err.value.code == "bad_signature"
