"""Envelopes on one station: PUT for every device, delivery over /ws/mailbox in order then
queue_empty, ack-then-delete, redelivery, the cross-device ack that deletes nothing, a second
connection closing the first, expiry, the queue cap, and 409/410/413/429."""

from __future__ import annotations

import secrets

import pytest

from tests.signaling import wsclient
from tests.signaling.mailbox.conftest import (
    Mailbox,
    drain,
    envelopes_until,
    mailbox_daphne,
    opaque,
)
from tests.signaling.mailbox.signal_client import SignalDevice
from tests.signaling.stationdb import django_run, off_loop

pytestmark = pytest.mark.integration

station = mailbox_daphne(MESHSITE_MAILBOX_QUEUE_CAP="5", MESHSITE_MAILBOX_SEND_RATE="40",
                         MESHSITE_MAILBOX_BUNDLE_RATE="6", MESHSITE_MAILBOX_BUNDLE_TARGET_RATE="8",
                         MESHSITE_MAILBOX_LOW_PREKEYS="1", MESHSITE_MAILBOX_REGISTER_RATE="8")


@pytest.fixture
def api(station) -> Mailbox:
    return Mailbox(station.url)


def queue_size(station, device: SignalDevice) -> int:
    out = django_run(station, "from signaling.models import MailboxMessage as M\n"
                              "print(M.objects.filter(device__token_hash=__import__('hashlib')"
                              ".sha256(sys.argv[1].encode()).hexdigest()).count())",
                     device.token)
    return int(out.strip())


async def test_delivery_in_order_ack_deletes_and_redelivery(api: Mailbox, station) -> None:
    bob = await off_loop(api.register, "DL1BOB")
    alice = await off_loop(api.register, "W1ALI")
    sent = []
    for n in range(3):
        envelope = opaque(bob, size=100 + n)
        status, body = await off_loop(api.send, alice, "DL1BOB", [envelope])
        assert status == 200, body
        sent.append((body["ids"][0], envelope["content"]))
    ws = await api.socket(bob)
    frames = await drain(ws)
    assert [f["type"] for f in frames] == ["envelope"] * 3 + ["queue_empty"]
    assert [(f["id"], f["content"]) for f in frames[:3]] == sent
    first = frames[0]
    assert (first["source"], first["sourceDevice"], first["messageType"]) == (
        "W1ALI", alice.device_id, 1)
    # Ack the first only; a reconnect brings the other two again, in order.
    await wsclient.send(ws, {"type": "ack", "id": sent[0][0]})
    await ws.close()
    ws = await api.socket(bob)
    frames = await drain(ws)
    assert [f["id"] for f in frames[:-1]] == [sent[1][0], sent[2][0]]
    for envelope_id, _ in sent[1:]:
        await wsclient.send(ws, {"type": "ack", "id": envelope_id})
    # A live connection gets new envelopes as they arrive (the doorbell).
    status, body = await off_loop(api.send, alice, "DL1BOB", [opaque(bob)])
    assert status == 200, body
    [live] = await envelopes_until(ws, 1)
    assert live["id"] == body["ids"][0]
    await wsclient.send(ws, {"type": "ack", "id": live["id"]})
    await ws.close()
    ws = await api.socket(bob)
    assert await drain(ws) == [{"type": "queue_empty"}]
    assert await off_loop(queue_size, station, bob) == 0


async def test_ack_from_another_device_deletes_nothing(api: Mailbox, station) -> None:
    first = await off_loop(api.register, "G4CAR")
    second = await off_loop(api.register, "G4CAR", SignalDevice(sibling=first))
    alice = await off_loop(api.register, "W1ALI")
    status, body = await off_loop(api.send, alice, "G4CAR", [opaque(first), opaque(second)])
    assert status == 200, body
    for_first, for_second = body["ids"]
    ws_second = await api.socket(second)
    [envelope, _] = await drain(ws_second)
    assert envelope["id"] == for_second
    # The second device acks the first device's envelope: nothing happens to it.
    await wsclient.send(ws_second, {"type": "ack", "id": for_first})
    await wsclient.send(ws_second, {"type": "ack", "id": for_second})
    ws_first = await api.socket(first)
    frames = await drain(ws_first)
    assert [f["id"] for f in frames[:-1]] == [for_first]
    assert await off_loop(queue_size, station, second) == 0
    assert await off_loop(queue_size, station, first) == 1


async def test_second_connection_closes_the_first(api: Mailbox) -> None:
    bob = await off_loop(api.register, "DL1BOB")
    alice = await off_loop(api.register, "W1ALI")
    old = await api.socket(bob)
    assert await drain(old) == [{"type": "queue_empty"}]
    new = await api.socket(bob)
    assert await drain(new) == [{"type": "queue_empty"}]
    assert await wsclient.closed(old) == 4000
    status, body = await off_loop(api.send, alice, "DL1BOB", [opaque(bob)])
    assert status == 200, body
    [envelope] = await envelopes_until(new, 1)
    assert envelope["id"] == body["ids"][0]


async def test_expired_envelopes_are_never_delivered_and_are_pruned(api: Mailbox,
                                                                    station) -> None:
    bob = await off_loop(api.register, "DL1BOB")
    alice = await off_loop(api.register, "W1ALI")
    status, old = await off_loop(api.send, alice, "DL1BOB", [opaque(bob)])
    status, fresh = await off_loop(api.send, alice, "DL1BOB", [opaque(bob)])
    assert status == 200
    # Time passes for the first one only.
    await off_loop(django_run, station,
                   "from django.utils import timezone\n"
                   "from signaling.models import MailboxMessage as M\n"
                   "M.objects.filter(server_id=sys.argv[1]).update(expires_at=timezone.now())",
                   old["ids"][0])
    ws = await api.socket(bob)
    frames = await drain(ws)
    assert [f["id"] for f in frames[:-1]] == fresh["ids"]
    assert await off_loop(queue_size, station, bob) == 2
    from tests.signaling.stationdb import manage

    result = await off_loop(manage, station, "prunemessages")
    assert result.returncode == 0, result.stderr
    assert "deleted 1 expired envelope(s)" in result.stdout
    assert await off_loop(queue_size, station, bob) == 1
    help_text = await off_loop(manage, station, "prunemessages", "--help")
    assert "MESHSITE_MAILBOX_MESSAGE_TTL" in help_text.stdout


async def test_queue_cap_keeps_the_newest(api: Mailbox, station) -> None:
    bob = await off_loop(api.register, "DL1BOB")
    alice = await off_loop(api.register, "W1ALI")
    ids = []
    for _ in range(8):
        status, body = await off_loop(api.send, alice, "DL1BOB", [opaque(bob)])
        assert status == 200, body
        ids += body["ids"]
    ws = await api.socket(bob)
    frames = await drain(ws)
    assert [f["id"] for f in frames[:-1]] == ids[-5:]


def test_409_missing_and_extra_devices_410_stale(api: Mailbox) -> None:
    first = api.register("G4CAR")
    second = api.register("G4CAR", SignalDevice(sibling=first))
    alice = api.register("W1ALI")
    status, body = api.send(alice, "G4CAR", [opaque(first)])
    assert status == 409, body
    assert (body["missingDevices"], body["extraDevices"]) == ([second.device_id], [])
    ghost = opaque(first)
    ghost["deviceId"] = 99
    status, body = api.send(alice, "G4CAR", [opaque(first), opaque(second), ghost])
    assert status == 409, body
    assert (body["missingDevices"], body["extraDevices"]) == ([], [99])
    stale = opaque(second)
    stale["registrationId"] += 1
    status, body = api.send(alice, "G4CAR", [opaque(first), stale])
    assert status == 410, body
    assert body["staleDevices"] == [second.device_id]
    # Writing to oneself: the sender's own device is not expected (and is extra if named).
    status, body = api.send(first, "G4CAR", [opaque(second)])
    assert status == 200, body
    status, body = api.send(first, "G4CAR", [opaque(first), opaque(second)])
    assert status == 409 and body["extraDevices"] == [first.device_id], body


def test_413_over_96_kib_and_malformed_envelopes(api: Mailbox) -> None:
    bob = api.register("DL1BOB")
    alice = api.register("W1ALI")
    status, body = api.send(alice, "DL1BOB", [opaque(bob, size=96 * 1024)])
    assert status == 200, body
    status, body = api.send(alice, "DL1BOB", [opaque(bob, size=96 * 1024 + 1)])
    assert status == 413 and body["error"] == "too_large", body
    for broken, field in ((dict(opaque(bob), content="%%%"), "content"),
                          (dict(opaque(bob), type=300), "type"),
                          (dict(opaque(bob), deviceId="1"), "deviceId")):
        status, body = api.send(alice, "DL1BOB", [broken])
        assert status == 400 and field in body["detail"], body
    status, body = api.call("PUT", "/api/mailbox/messages/DL1BOB",
                            {"messages": [opaque(bob)]}, token=alice.token)
    assert status == 400 and "timestamp" in body["detail"], body
    status, body = api.send(alice, "K9NONE", [opaque(bob)])
    assert status == 404, body
    status, body = api.call("PUT", "/api/mailbox/messages/DL1BOB",
                            {"messages": [], "timestamp": 1})
    assert status == 401, body


def test_429_send_and_bundle_rates(api: Mailbox) -> None:
    bob = api.register("DL1BOB", SignalDevice(prekeys=20))
    alice = api.register("W1ALI")
    carol = api.register("G4CAR")
    statuses = [api.bundle(alice, "DL1BOB")[0] for _ in range(7)]
    assert statuses == [200] * 6 + [429]  # per requester
    status, body = api.bundle(alice, "DL1BOB")
    assert status == 429 and body["error"] == "rate_limited", body
    statuses = [api.bundle(carol, "DL1BOB")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]  # per target: 8 in the window across requesters
    sent = [api.send(alice, "DL1BOB", [opaque(bob, size=8)])[0] for _ in range(41)]
    assert sent == [200] * 40 + [429]
    # Device nonces per client address: the three registrations above took three of eight.
    nonces = [api.call("POST", "/api/mailbox/devices/nonce")[0] for _ in range(6)]
    assert nonces == [200] * 5 + [429]


async def test_keys_low_event_and_count(api: Mailbox) -> None:
    bob = await off_loop(api.register, "DL1BOB", SignalDevice(prekeys=3))
    alice = await off_loop(api.register, "W1ALI")
    ws = await api.socket(bob)
    await drain(ws)
    status, _ = await off_loop(api.bundle, alice, "DL1BOB")
    assert status == 200
    await wsclient.silent(ws, 0.3)  # 2 left: above the mark of 1
    await off_loop(api.bundle, alice, "DL1BOB")
    assert await wsclient.recv(ws) == {"type": "keys_low", "oneTimePreKeyCount": 1}
    await off_loop(api.bundle, alice, "DL1BOB")
    await wsclient.silent(ws, 0.3)  # once per fall below the mark
    status, body = await off_loop(api.call, "GET", "/api/mailbox/keys", None, bob.token)
    assert body == {"oneTimePreKeyCount": 0, "low": True}


async def test_socket_refusals(api: Mailbox) -> None:
    ws = await wsclient.ws_connect(api.ws_base + "/ws/mailbox")
    await wsclient.send(ws, {"type": "auth", "token": "mbx_" + secrets.token_urlsafe(8)})
    frame = await wsclient.recv(ws)
    assert frame["error"] == "unauthorized", frame
    assert await wsclient.closed(ws) == 4401
    ws = await wsclient.ws_connect(api.ws_base + "/ws/mailbox")
    await wsclient.send(ws, {"type": "ack", "id": "x"})
    assert (await wsclient.recv(ws))["error"] == "unauthorized"
    assert await wsclient.closed(ws) == 4401
    ws = await wsclient.ws_connect(api.ws_base + "/ws/mailbox")
    await wsclient.send(ws, "not json")
    assert (await wsclient.recv(ws))["error"] == "unauthorized"
    bob = await off_loop(api.register, "DL1BOB")
    ws = await api.socket(bob)
    await drain(ws)
    await wsclient.send(ws, {"type": "ping"})
    assert (await wsclient.recv(ws))["error"] == "unknown_type"
    await wsclient.send(ws, {"type": "ack", "id": 5})
    assert (await wsclient.recv(ws))["error"] == "invalid"
    await wsclient.send(ws, {"type": "ack", "id": "unknown"})  # usable after refusals
    await wsclient.silent(ws, 0.2)
