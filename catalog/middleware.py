"""Requests for `http://<callsign>.radio/<path>` become `/c/<callsign>/<path>`.

A browser using `/proxy.pac` sends such requests to the station either in origin form with
`Host: w1aw.radio`, or, as proxies receive them, in absolute form (`GET http://w1aw.radio/x`),
which reaches Django as a path starting with `http://`; both are mapped here. `/` and paths
ending in `/` mean `index.html`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest

RADIO_SUFFIX = ".radio"


def _radio_callsign(host: str) -> str:
    """`w1aw.radio` -> `w1aw`; anything else -> ''."""
    host = host.lower().rstrip(".")
    if not host.endswith(RADIO_SUFFIX) or host.count(".") != 1:
        return ""
    return host[: -len(RADIO_SUFFIX)]


def rewrite_radio_request(request: HttpRequest) -> None:
    path = request.path_info
    if path.startswith(("http://", "https://")):
        # Absolute form, as a proxy receives it: only *.radio is ours to answer; any other
        # host is left as it is (it matches no URL here: this station is no open proxy).
        parts = urlsplit(path)
        if not _radio_callsign(parts.hostname or ""):
            return
        path = parts.path or "/"
        request.META["HTTP_HOST"] = parts.netloc
        request.path_info = request.path = path
    callsign = _radio_callsign(request.META.get("HTTP_HOST", "").rsplit(":", 1)[0])
    if not callsign:
        return
    inner = path.lstrip("/")
    if inner == "" or inner.endswith("/"):
        inner += "index.html"
    request.path_info = request.path = f"/c/{callsign}/{inner}"


class RadioHostMiddleware:
    """Map `<callsign>.radio` requests onto the content URLs."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        rewrite_radio_request(request)
        return self.get_response(request)
