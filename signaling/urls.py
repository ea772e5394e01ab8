"""PeerJS HTTP endpoints under MESHSITE_PEERJS_PATH (default `/peerjs/`)."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from signaling.views import peerjs_id, peerjs_peers, peerjs_root

_base = settings.SIGNALING_PEERJS_PATH.lstrip("/")

urlpatterns = [
    path(_base, peerjs_root, name="peerjs-root"),
    path(f"{_base}<str:key>/id", peerjs_id, name="peerjs-id"),
    path(f"{_base}<str:key>/peers", peerjs_peers, name="peerjs-peers"),
]
