"""ASGI entry point: HTTP through Django, WebSockets through each app's `routing.py`."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after Django setup

from catalog.routing import websocket_urlpatterns as catalog_ws  # noqa: E402
from certificates.routing import websocket_urlpatterns as certificates_ws  # noqa: E402
from mesh.routing import websocket_urlpatterns as mesh_ws  # noqa: E402
from meshsite.routing import websocket_urlpatterns as live_ws  # noqa: E402
from signaling.routing import websocket_urlpatterns as signaling_ws  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": URLRouter(signaling_ws + mesh_ws + catalog_ws + certificates_ws + live_ws),
})

# CPython's cyclic garbage collector, tuned for a server holding thousands of WebSockets: with
# the default thresholds (700, 10, 10) a full collection ran every few seconds at 5000
# connections and stopped the event loop for 200-650 ms each time (relay p99 400-550 ms in
# bench/signaling 5k-1000). Objects loaded at start-up are frozen out of collections, and young
# objects get room to die before they are promoted: full collections become rare.
gc.freeze()
gc.set_threshold(50_000, 20, 100)
