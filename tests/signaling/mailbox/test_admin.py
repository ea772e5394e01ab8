"""The mailbox in the admin: operators, devices with their queue sizes and key counts, home
records, pending forwards; pages answer 200, show the counts, and never an envelope's bytes."""

from __future__ import annotations

import base64
import secrets

import pytest
from django.utils import timezone

from signaling.models import (
    MailboxDevice,
    MailboxHome,
    MailboxMessage,
    MailboxOperator,
    MailboxOutbound,
    OneTimePreKey,
)

pytestmark = pytest.mark.django_db


def test_mailbox_admin_pages_show_sizes_never_contents(admin_client) -> None:
    secret = secrets.token_bytes(48)
    operator = MailboxOperator.objects.create(callsign="DL1BOB", identity_key=b"\x05" + b"1" * 32)
    device = MailboxDevice.objects.create(operator=operator, device_id=1, registration_id=7,
                                          signed_prekey_id=1, signed_prekey=b"\x05" + b"2" * 32,
                                          signed_prekey_signature=b"3" * 64, token_hash="0" * 64)
    OneTimePreKey.objects.bulk_create([OneTimePreKey(device=device, key_id=n,
                                                     public_key=b"\x05" + bytes(32))
                                       for n in range(1, 4)])
    later = timezone.now() + timezone.timedelta(days=1)
    for _ in range(2):
        MailboxMessage.objects.create(server_id=secrets.token_hex(16), device=device,
                                      source="W1ALI", source_device=1, message_type=1,
                                      timestamp=1, content=secret, expires_at=later)
    MailboxHome.objects.create(callsign="G4CAR", station_id="ab" * 16, issued_at=1_700_000_000_000,
                               proof={}, credential={"callsign": "G4HOME"}, signature="x")
    MailboxOutbound.objects.create(
        batch_id="cd" * 16, callsign="G4CAR", home_station="ab" * 16, source="DL1BOB",
        source_device=1, payload={"timestamp": 1, "messages": [
            {"deviceId": 1, "registrationId": 1, "type": 1,
             "content": base64.b64encode(secret).decode()}]},
        last_error="no_lan_route: the only route has an RF hop", next_attempt_at=later,
        expires_at=later)
    forbidden = [base64.b64encode(secret).decode(), secret.hex(), base64.b64encode(secret)[:20]
                 .decode()]
    pages = {
        "/admin/signaling/mailboxoperator/": ["DL1BOB"],
        f"/admin/signaling/mailboxoperator/{operator.pk}/change/": ["DL1BOB"],
        "/admin/signaling/mailboxdevice/": ["DL1BOB.1"],
        f"/admin/signaling/mailboxdevice/{device.pk}/change/": ["DL1BOB"],
        "/admin/signaling/mailboxhome/": ["G4CAR", "G4HOME"],
        "/admin/signaling/mailboxoutbound/": ["G4CAR", "RF hop"],
    }
    for url, expected in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for text in expected:
            assert text in html, (url, text)
        for text in forbidden:
            assert text not in html, url
    devices = admin_client.get("/admin/signaling/mailboxdevice/").content.decode()
    assert '<td class="field-prekeys">3</td>' in devices
    assert '<td class="field-queued">2</td>' in devices
    outbound = MailboxOutbound.objects.get()
    response = admin_client.get(f"/admin/signaling/mailboxoutbound/{outbound.pk}/change/")
    assert response.status_code == 200
    assert base64.b64encode(secret).decode() not in response.content.decode()
