"""Mailbox traffic never takes an RF hop. This branch has no RF transport yet, so the test works on
the routing table's LAN-only view, which the RF transport will fill: for an operator homed on a
station whose only route has an RF hop (`Route.lan_next_hop` empty), sending answers 503
no_lan_route and nothing is offered to the mesh; with waitForRoute the batch waits here (202)
and the beat keeps it without sending; a bundle request is refused alike; forwarding's own route
choice for the mailbox kinds skips the RF next hop. Runs in-process (and on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import pytest
from django.utils import timezone

from mesh import forwarding, registry
from mesh.services import routes_store
from signaling import mailbox_mesh
from signaling.models import MailboxDevice, MailboxHome, MailboxOperator, MailboxOutbound

pytestmark = pytest.mark.django_db

HOME = "ab" * 16
RF_NEIGHBOUR = "cd" * 16
LAN_NEIGHBOUR = "ef" * 16


@pytest.fixture
def alice() -> str:
    """A local device of W1ALI; its token."""
    token = "mbx_" + secrets.token_urlsafe(16)
    operator = MailboxOperator.objects.create(callsign="W1ALI", identity_key=b"\x05" + b"1" * 32)
    MailboxDevice.objects.create(operator=operator, device_id=1, registration_id=7,
                                 signed_prekey_id=1, signed_prekey=b"\x05" + b"2" * 32,
                                 signed_prekey_signature=b"3" * 64,
                                 token_hash=hashlib.sha256(token.encode()).hexdigest())
    MailboxHome.objects.create(callsign="DL1BOB", station_id=HOME, issued_at=1, proof={},
                               credential={}, signature="x")
    return token


def store_route(lan_next_hop: str) -> None:
    from mesh.trust import local_station

    routes_store([{
        "destination": HOME, "callsign": "DL1HB", "next_hop": RF_NEIGHBOUR,
        "next_hop_callsign": "DL1RF", "cost": 900, "hops": 2, "seqno": 1,
        "refreshed_at": timezone.now(), "lan_next_hop": lan_next_hop,
        "lan_cost": 500 if lan_next_hop else None, "lan_hops": 3 if lan_next_hop else None,
    }], self_station_id=local_station().station_id)


def put(client, token: str, **extra) -> tuple[int, dict]:
    body = {"messages": [{"deviceId": 1, "registrationId": 5, "type": 1, "content": "AAAA"}],
            "timestamp": 1, **extra}
    response = client.put("/api/mailbox/messages/DL1BOB", body, content_type="application/json",
                          HTTP_AUTHORIZATION=f"Bearer {token}")
    return response.status_code, response.json()


def test_only_an_rf_route_is_refused_and_nothing_is_sent(client, alice) -> None:
    store_route(lan_next_hop="")
    status, body = put(client, alice)
    assert status == 503 and body["error"] == "no_lan_route", body
    assert "never goes on the air" in body["detail"]
    assert not MailboxOutbound.objects.exists()
    response = client.get("/api/mailbox/keys/DL1BOB/*", HTTP_AUTHORIZATION=f"Bearer {alice}")
    assert response.status_code == 503 and response.json()["error"] == "no_lan_route"


def test_waiting_for_a_lan_route_keeps_the_batch_without_sending(client, alice) -> None:
    store_route(lan_next_hop="")
    status, body = put(client, alice, waitForRoute=True)
    assert status == 202 and body["forwarded"] == "queued", body
    [kept] = MailboxOutbound.objects.all()
    assert kept.state == MailboxOutbound.State.WAITING_LAN
    MailboxOutbound.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert mailbox_mesh.outbound_forward_due() == {"accepted": 0, "kept": 1, "refused": 0}
    kept.refresh_from_db()
    assert kept.attempts == 1 and "RF hop" in kept.last_error


def test_no_route_at_all(client, alice) -> None:
    status, body = put(client, alice)
    assert status == 503 and body["error"] == "no_route", body


def test_forwarding_takes_the_lan_next_hop_for_mailbox_kinds() -> None:
    for kind in ("mailbox_bundle", "mailbox_deliver", "mailbox_batch", "mailbox_stored"):
        assert registry.forward_lan_only(kind), kind
    assert not registry.forward_lan_only("content")
    store_route(lan_next_hop="")
    assert forwarding._route(HOME) == (RF_NEIGHBOUR, 2)
    assert forwarding._route(HOME, lan_only=True) is None
    store_route(lan_next_hop=LAN_NEIGHBOUR)
    assert forwarding._route(HOME, lan_only=True) == (LAN_NEIGHBOUR, 3)
    assert mailbox_mesh.lan_route_problem(HOME) is None
