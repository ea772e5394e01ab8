from __future__ import annotations

from django.urls import path

from mesh.consumers import CoordinateConsumer, NetworkStatusConsumer

websocket_urlpatterns: list = [
    path("ws/coordinate", CoordinateConsumer.as_asgi()),
    path("ws/mesh/status", NetworkStatusConsumer.as_asgi()),
]
