"""The plain station page at `/` (the PWA grows from it)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from meshsite import status as station_status
from meshsite.api import signaling_url, station_endpoint
from meshsite.version import full_version


def station_page(request: HttpRequest) -> HttpResponse:
    data = station_status.apply_status({
        "state": "unclaimed", "owner": None, "networkMode": "unknown",
        "signaling": {"url": signaling_url(request), "connected": 0},
    })
    context = {
        "status": data,
        "version": full_version(),
        "endpoint": station_endpoint(request),
        "signaling_url": signaling_url(request),
    }
    return render(request, "station.html", context)
