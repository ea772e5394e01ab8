"""Devices registered by license proof, prekey uploads and bundles, against a real daphne: the
happy paths and every refusal with its code (400 malformed, 401, 404, 422 bad signatures)."""

from __future__ import annotations

import base64
import copy

import pytest

from tests.signaling.mailbox.conftest import Mailbox, mailbox_daphne, person
from tests.signaling.mailbox.signal_client import SignalDevice, b64, random_key

pytestmark = pytest.mark.integration

station = mailbox_daphne()


@pytest.fixture
def api(station) -> Mailbox:
    return Mailbox(station.url)


def test_register_then_keys_count_and_bundle(api: Mailbox) -> None:
    bob = api.register("DL1BOB", SignalDevice(prekeys=5))
    assert bob.token.startswith("mbx_") and bob.device_id >= 1
    assert api.count(bob) == 5
    alice = api.register("W1ALI")
    status, bundle = api.bundle(alice, "dl1bob", str(bob.device_id))
    assert status == 200, bundle
    assert bundle["callsign"] == "DL1BOB"
    assert base64.b64decode(bundle["identityKey"]) == bob.identity_key
    [device] = bundle["devices"]
    assert device["deviceId"] == bob.device_id
    assert device["registrationId"] == bob.registration_id
    assert device["signedPreKey"] == bob.signed_prekey()
    assert device["oneTimePreKey"] in bob.one_time_prekeys()
    assert api.count(bob) == 4


def test_bundle_without_one_time_key_when_none_left(api: Mailbox) -> None:
    bob = api.register("DL1BOB", SignalDevice(prekeys=2))
    alice = api.register("W1ALI")
    taken = [api.bundle(alice, "DL1BOB") for _ in range(4)]
    assert [status for status, _ in taken] == [200] * 4
    keys = [body["devices"][0]["oneTimePreKey"] for _, body in taken]
    assert keys[2:] == [None, None]
    assert sorted(key["keyId"] for key in keys[:2]) == [1, 2]
    assert api.count(bob) == 0
    status, body = api.call("GET", "/api/mailbox/keys", token=bob.token)
    assert (status, body) == (200, {"oneTimePreKeyCount": 0, "low": True})


def test_non_empty_upload_replaces_and_empty_changes_nothing(api: Mailbox) -> None:
    bob = api.register("DL1BOB", SignalDevice(prekeys=3))
    fresh = SignalDevice(prekeys=7)
    status, body = api.call("PUT", "/api/mailbox/keys",
                            {"oneTimePreKeys": fresh.one_time_prekeys(first_id=100)},
                            token=bob.token)
    assert status == 200 and body["oneTimePreKeyCount"] == 7, body
    status, body = api.call("PUT", "/api/mailbox/keys", {"oneTimePreKeys": []}, token=bob.token)
    assert status == 200 and body["oneTimePreKeyCount"] == 7, body
    alice = api.register("W1ALI")
    _, bundle = api.bundle(alice, "DL1BOB")
    assert bundle["devices"][0]["oneTimePreKey"]["keyId"] >= 100
    # A new signed prekey, signed by the operator's identity key, is what bundles carry next.
    status, body = api.call("PUT", "/api/mailbox/keys",
                            {"signedPreKey": bob.signed_prekey(key_id=9)}, token=bob.token)
    assert status == 200, body
    _, bundle = api.bundle(alice, "DL1BOB")
    assert bundle["devices"][0]["signedPreKey"]["keyId"] == 9


def test_second_device_of_an_operator(api: Mailbox) -> None:
    first = api.register("G4CAR")
    second = api.register("G4CAR", SignalDevice(sibling=first))
    assert second.device_id == first.device_id + 1
    alice = api.register("W1ALI")
    _, bundle = api.bundle(alice, "G4CAR")
    assert [d["deviceId"] for d in bundle["devices"]] == [first.device_id, second.device_id]
    # A new identity key starts the operator afresh: the old devices' tokens stop working.
    third = api.register("G4CAR")
    assert third.device_id == 1
    status, body = api.call("GET", "/api/mailbox/keys", token=first.token)
    assert status == 401, body


def test_bad_signed_prekey_signature_is_422(api: Mailbox) -> None:
    device = SignalDevice()
    body = device.registration(person("DL1BOB")[1], api.nonce())
    other = SignalDevice()
    body["signedPreKey"] = other.signed_prekey()  # signed by another identity key
    status, answer = api.call("POST", "/api/mailbox/devices", body)
    assert status == 422 and answer["error"] == "bad_signature", answer
    bob = api.register("DL1BOB")
    status, answer = api.call("PUT", "/api/mailbox/keys",
                              {"signedPreKey": other.signed_prekey()}, token=bob.token)
    assert status == 422 and answer["error"] == "bad_signature", answer


def test_bad_license_signature_is_422_and_nonce_single_use(api: Mailbox) -> None:
    device = SignalDevice()
    nonce = api.nonce()
    body = device.registration(person("DL1BOB")[1], nonce)
    body["signature"] = person("W1ALI")[1].sign(base64.b64decode(nonce["message"]))
    status, answer = api.call("POST", "/api/mailbox/devices", body)
    assert status == 422 and answer["error"] == "bad_proof", answer
    body = device.registration(person("DL1BOB")[1], nonce)
    status, answer = api.call("POST", "/api/mailbox/devices", body)
    assert status == 400 and answer["error"] == "bad_nonce", answer


def test_untrusted_certificate_is_refused(api: Mailbox) -> None:
    from tests.certificates import pki

    _root, stranger = pki.meshsite_chain("N0DAV", "ed25519")  # root not trusted here
    device = SignalDevice()
    status, answer = api.call("POST", "/api/mailbox/devices",
                              device.registration(stranger, api.nonce()))
    assert status == 400 and answer["error"] == "untrusted_root", answer


@pytest.mark.parametrize(("change", "detail"), [
    (lambda b: b.update(identityKey=b64(b"\x06" + b"\x01" * 32)), "identityKey"),
    (lambda b: b.update(identityKey="not base64!"), "identityKey"),
    (lambda b: b["signedPreKey"].update(publicKey=b64(b"\x05" + b"\x01" * 31)),
     "signedPreKey.publicKey"),
    (lambda b: b.update(oneTimePreKeys=[{"keyId": 0, "publicKey": random_key()}]),
     "oneTimePreKeys[0].keyId"),
    (lambda b: b.update(oneTimePreKeys=[{"keyId": 2**24, "publicKey": random_key()}]),
     "oneTimePreKeys[0].keyId"),
    (lambda b: b.update(oneTimePreKeys=[{"keyId": n, "publicKey": random_key()}
                                        for n in range(1, 102)]), "at most 100"),
    (lambda b: b.update(oneTimePreKeys=[{"keyId": 5, "publicKey": random_key()}] * 2),
     "appears twice"),
    (lambda b: b.update(registrationId="7"), "registrationId"),
    (lambda b: b.update(certificate=""), "certificate"),
])
def test_malformed_registration_is_400_naming_the_field(api: Mailbox, change, detail) -> None:
    body = SignalDevice().registration(person("DL1BOB")[1], api.nonce())
    body = copy.deepcopy(body)
    change(body)
    status, answer = api.call("POST", "/api/mailbox/devices", body)
    assert status == 400, answer
    assert detail in answer["detail"], answer


def test_prekey_upload_limits(api: Mailbox) -> None:
    bob = api.register("DL1BOB")
    keys = [{"keyId": n, "publicKey": random_key()} for n in range(1, 101)]
    status, body = api.call("PUT", "/api/mailbox/keys", {"oneTimePreKeys": keys},
                            token=bob.token)
    assert status == 200 and body["oneTimePreKeyCount"] == 100, body
    keys.append({"keyId": 101, "publicKey": random_key()})
    status, body = api.call("PUT", "/api/mailbox/keys", {"oneTimePreKeys": keys},
                            token=bob.token)
    assert status == 400 and body["error"] == "too_many_prekeys", body
    assert api.count(bob) == 100


def test_tokens_and_unknown_targets(api: Mailbox) -> None:
    bob = api.register("DL1BOB")
    status, body = api.call("GET", "/api/mailbox/keys")
    assert status == 401, body
    status, body = api.call("GET", "/api/mailbox/keys", token="mbx_nope")
    assert status == 401, body
    status, body = api.call("GET", "/api/mailbox/keys/DL1BOB/*")
    assert status == 401, body
    status, body = api.bundle(bob, "K9NONE")
    assert status == 404 and body["error"] == "unknown_operator", body
    status, body = api.bundle(bob, "DL1BOB", "77")
    assert status == 404 and body["error"] == "unknown_device", body
    status, body = api.bundle(bob, "DL1BOB", "x")
    assert status == 400, body
    status, body = api.call("PUT", "/api/mailbox/keys", [1, 2], token=bob.token)
    assert status == 400, body
