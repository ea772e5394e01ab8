"""ASGI entry point: HTTP through Django, WebSockets through each app's `routing.py`."""

from __future__ import annotations

import gc
import os
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshsite.settings")


class Handler(ASGIHandler):
    """Django's ASGI handler without the reference cycle it leaves after each request.

    Django 5.2's `listen_for_disconnect` raises RequestAborted when the server reports the
    client gone, which daphne does as soon as a response has been sent, so most requests end
    with it. `handle()` reads that task's result, and the re-raised exception's traceback then
    holds `handle()`'s frame, which holds the task, which holds the exception: a cycle through
    the whole request (the ASGIRequest, its body file, the response, the request's context and
    Twisted connection). Reference counting can never free it; only the cyclic collector can,
    and in this process that runs only every 50,000 net allocations (the thresholds below): a
    relay's daphne, pinged by its neighbours and asked for bodies, held megabytes of finished
    requests (bench/routing/fetch.py). Returning instead is the same to Django 5.2's `handle()`,
    which cancels the request whenever the listener has finished first, and ignores its
    RequestAborted. (Django 6.1 changes `handle()`; pyproject pins 5.2.)"""

    async def get_response_async(self, request: Any) -> Any:
        response = await super().get_response_async(request)
        # More cycles of every request, broken once the response is closed (sent, or the
        # client gone), when nothing reads them any more (Django's own closer, `request.close`,
        # runs first). What middleware hangs on the request points back at it: `request.auser`
        # (a partial of the request), `request.user`, `request._messages` (a storage holding
        # the request). A REST framework response names its view and its request in
        # `renderer_context`: the view holds itself (Django's `View.setup` sets `self.head =
        # self.get`), the framework's request too (`parser_context["request"]`), and both hold
        # the request. The closers hold neither the request nor the response, only these
        # objects' dicts.
        held = [request]
        context = getattr(response, "renderer_context", None)
        if isinstance(context, dict):
            held += [context.get("view"), context.get("request")]
            response._resource_closers.append(context.clear)
        response._resource_closers.extend(
            vars(thing).clear for thing in held if hasattr(thing, "__dict__"))
        response._resource_closers.append(_close_connections)
        return response

    async def listen_for_disconnect(self, receive: Any) -> None:
        message = await receive()
        if message["type"] != "http.disconnect":  # as Django: never happens
            raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")


def _close_connections() -> None:
    """Close this thread's database connections. It runs in `response.close()`, which Django
    calls in the request's own thread: asgiref gives each request (its ThreadSensitiveContext)
    a new thread for its sync code, so a connection kept for CONN_MAX_AGE is never used again
    and is dropped unclosed when that thread ends. An unclosed sqlite3 connection is in a
    reference cycle (its statement cache), so it and SQLite's memory behind it (page cache,
    statements) stayed until the cyclic collector ran: on a relay, some 250 KB for each body
    request a neighbour made (bench/routing/fetch.py)."""
    for connection in connections.all(initialized_only=True):
        connection.close()


django.setup(set_prefix=False)  # what get_asgi_application() does before making its handler
django_asgi_app = Handler()

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
