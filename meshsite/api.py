"""Station-wide endpoints: `/api/status`, `/api/info`, `/healthz`."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from meshsite import status as station_status
from meshsite.redisconn import get_redis
from meshsite.serializers import HealthSerializer, StationInfoSerializer, StationStatusSerializer
from meshsite.tasks import HEARTBEAT_KEY
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


def _check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, f"database unreachable: {exc}"
    return True, connection.vendor


def _check_redis() -> tuple[bool, str]:
    try:
        get_redis().ping()
    except Exception as exc:
        return False, f"redis unreachable: {exc}"
    return True, "pong"


def _check_worker() -> tuple[bool, str]:
    try:
        raw = get_redis().get(HEARTBEAT_KEY)
    except Exception as exc:
        return False, f"heartbeat unreadable: {exc}"
    if raw is None:
        return False, "no heartbeat from the Celery worker/beat yet"
    age = time.time() - float(raw)
    if age > settings.HEARTBEAT_MAX_AGE:
        return False, f"last worker heartbeat {age:.0f}s ago (limit {settings.HEARTBEAT_MAX_AGE}s)"
    return True, f"heartbeat {age:.1f}s ago"


class HealthzApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer},
                   summary="Liveness of database, Redis and worker")
    def get(self, request: Request) -> Response:
        checks = {"database": _check_database, "redis": _check_redis, "worker": _check_worker}
        checks.update(station_status.health_checks())
        results = {}
        for name, check in checks.items():
            ok, detail = check()
            results[name] = {"ok": ok, "detail": detail}
        failed = [name for name, result in results.items() if not result["ok"]]
        body = {"status": "failing" if failed else "ok", "failed": failed, "checks": results}
        return Response(body, status=503 if failed else 200)
