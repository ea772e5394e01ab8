"""PeerJS HTTP endpoints under MESHSITE_PEERJS_PATH (default `/peerjs/`), and the mailbox API."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from signaling import api
from signaling.views import peerjs_id, peerjs_peers, peerjs_root

_base = settings.SIGNALING_PEERJS_PATH.lstrip("/")

urlpatterns = [
    path(_base, peerjs_root, name="peerjs-root"),
    path(f"{_base}<str:key>/id", peerjs_id, name="peerjs-id"),
    path(f"{_base}<str:key>/peers", peerjs_peers, name="peerjs-peers"),
    path("api/mailbox/devices/nonce", api.MailboxDeviceNonceApi.as_view(),
         name="mailbox-device-nonce"),
    path("api/mailbox/devices", api.MailboxDeviceRegisterApi.as_view(), name="mailbox-devices"),
    path("api/mailbox/keys", api.MailboxKeysApi.as_view(), name="mailbox-keys"),
    path("api/mailbox/keys/<str:callsign>/<str:device>", api.MailboxBundleApi.as_view(),
         name="mailbox-bundle"),
    path("api/mailbox/messages/<str:callsign>", api.MailboxMessagesApi.as_view(),
         name="mailbox-messages"),
]
