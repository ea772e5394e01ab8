"""WebSocket routes: `/ws/signal` and `{MESHSITE_PEERJS_PATH}peerjs` (plain ASGI apps), and
`/ws/mailbox` (a Channels consumer)."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from signaling.consumers import MailboxConsumer, PeerJSSocket, SignalSocket

websocket_urlpatterns: list = [
    path("ws/signal", SignalSocket()),
    path(settings.SIGNALING_PEERJS_PATH.lstrip("/") + "peerjs", PeerJSSocket()),
    path("ws/mailbox", MailboxConsumer.as_asgi()),
]
