"""The PWA's WebSocket: `/ws/live` (meshsite.consumers.LiveConsumer)."""

from __future__ import annotations

from django.urls import path

from meshsite.consumers import LiveConsumer

websocket_urlpatterns: list = [path("ws/live", LiveConsumer.as_asgi())]
