"""Station-wide endpoints: `/api/status`, `/api/info`, `/healthz`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from meshsite import health
from meshsite import status as station_status
from meshsite.serializers import HealthSerializer, StationInfoSerializer, StationStatusSerializer
from meshsite.version import full_version


def station_endpoint(request: Request) -> str:
    if settings.MESHSITE_PUBLIC_URL:
        return settings.MESHSITE_PUBLIC_URL.rstrip("/")
    return request.build_absolute_uri("/").rstrip("/")


def signaling_url(request: Request) -> str:
    endpoint = station_endpoint(request)
    scheme = "wss" if endpoint.startswith("https") else "ws"
    return scheme + endpoint.removeprefix("https").removeprefix("http") + "/ws/signal"


class StatusApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: StationStatusSerializer}, summary="Station status")
    def get(self, request: Request) -> Response:
        data: dict[str, Any] = {
            "state": "unclaimed",
            "owner": None,
            "version": full_version(),
            "endpoint": station_endpoint(request),
            "signaling": {"url": signaling_url(request), "connected": 0},
            "uptime": station_status.uptime_seconds(),
            "networkMode": "unknown",
            "parts": health.report(),
        }
        return Response(station_status.apply_status(data))


class InfoApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: StationInfoSerializer}, summary="What this station offers")
    def get(self, request: Request) -> Response:
        data: dict[str, Any] = {
            "type": "meshsite-station",
            "version": full_version(),
            "capabilities": [],
            "callsign": None,
            "signalingUrl": signaling_url(request),
        }
        return Response(station_status.apply_info(data))


class HealthzApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer},
                   summary="Whether every part of the station answers",
                   description="One entry per part (database, redis, web, worker, meshd) with "
                               "`ok` and a detail; 503 when any part is down. `networkMode` is "
                               "information, not a check: a station works offline.")
    def get(self, request: Request) -> Response:
        results = health.report()
        failed = [name for name, result in results.items() if not result["ok"]]
        body = {"status": "failing" if failed else "ok", "failed": failed, "checks": results}
        body.update(station_status.apply_health_info({"networkMode": "unknown"}))
        return Response(body, status=503 if failed else 200)
