"""The HTTP side of the PeerJS server protocol: `{path}`, `{path}{key}/id`, `{path}{key}/peers`.

Plain Django views (not DRF): the unmodified peerjs client expects the anchor server's exact
answers (a bare id as text/html, 401 "Unauthorized", the app.json document), not the station's
JSON error format. CORS reflects the request's Origin as the anchor does, or checks it against
MESHSITE_PEERJS_CORS_ORIGINS when that is set.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from signaling.selectors import client_find, peerjs_ids

APP_JSON = {
    "name": "PeerJS Server",
    "description": "A server side element to broker connections between PeerJS clients.",
    "website": "https://peerjs.com/",
}
_ALLOWED_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"

View = Callable[..., HttpResponse]


def _cors(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    origin = request.headers.get("Origin")
    allowed = settings.SIGNALING_PEERJS_CORS_ORIGINS
    if origin and (not allowed or origin in allowed or "*" in allowed):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Credentials"] = "true"
    response["Vary"] = "Origin"
    return response


def peerjs_http(view: View) -> View:
    """GET/HEAD through `view`, OPTIONS as a CORS preflight (204), other methods 405; CORS
    headers on every answer."""

    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = _ALLOWED_METHODS
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                response["Access-Control-Allow-Headers"] = requested
            response["Content-Length"] = "0"
        elif request.method in ("GET", "HEAD"):
            response = view(request, *args, **kwargs)
        else:
            response = HttpResponse(f"Cannot {request.method} {request.path}\n", status=405,
                                    content_type="text/plain; charset=utf-8")
            response["Allow"] = "GET, HEAD, OPTIONS"
        return _cors(response, request)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    wrapper.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapper


@peerjs_http
def peerjs_root(request: HttpRequest) -> HttpResponse:
    """The anchor's health document."""
    return JsonResponse(APP_JSON)


@peerjs_http
def peerjs_id(request: HttpRequest, key: str) -> HttpResponse:
    """A fresh id, not in use on any process (the anchor does not check the key here)."""
    for _ in range(10):
        candidate = str(uuid.uuid4())
        if client_find(protocol="peerjs", peer_id=candidate) is None:
            break
    return HttpResponse(candidate, content_type="text/html; charset=utf-8")


@peerjs_http
def peerjs_peers(request: HttpRequest, key: str) -> HttpResponse:
    """Connected ids, when MESHSITE_PEERJS_ALLOW_DISCOVERY is on; else 401 as the anchor."""
    if not settings.SIGNALING_PEERJS_ALLOW_DISCOVERY:
        return HttpResponse("Unauthorized", status=401, content_type="text/plain; charset=utf-8")
    return JsonResponse(peerjs_ids(), safe=False)
