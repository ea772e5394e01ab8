"""`/api/peers`, `/api/local-servers`, `/api/mesh/ping`, `/api/mesh/blacklist`,
`/api/mesh/network`, `/api/routes`."""

from __future__ import annotations

import functools

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mesh import selectors, services, trust
from mesh.models import MeshBlacklistEntry
from mesh.protocol import now_ms
from mesh.serializers import (
    MeshBlacklistEntrySerializer,
    MeshLocalServersSerializer,
    MeshNetworkSerializer,
    MeshPeerCreateSerializer,
    MeshPeerSerializer,
    MeshPingSerializer,
    MeshRoutesSerializer,
)
from meshsite.api_errors import ApiError
from meshsite.serializers import ErrorResponseSerializer


def _owner_api_settings() -> tuple[list, list]:
    """The certificates app's owner authentication when it offers one, else superusers."""
    try:
        from certificates.auth import IsStationOwner, OwnerTokenAuthentication
    except ImportError:
        from rest_framework.authentication import SessionAuthentication

        return [SessionAuthentication], [permissions.IsAdminUser]
    from rest_framework.authentication import SessionAuthentication

    # The operator's signed-in session (the PWA, with its CSRF token) counts as the owner too.
    return [OwnerTokenAuthentication, SessionAuthentication], [IsStationOwner]


@functools.cache
def _station_id() -> str:
    return trust.local_station().station_id


def peers_live_data() -> list[dict]:
    """The rows of GET /api/peers: the peer list with meshd's live state, round trip and link."""
    live = selectors.live_members()
    data = MeshPeerSerializer(selectors.peers_list(), many=True).data
    for row in data:
        current = live.get(str(row["id"]))
        if current:
            row["state"] = current["state"]
            row["rttMs"] = current["rttMs"]
            row["linked"] = bool(current.get("connected"))
    return data


class PeerListCreateApi(APIView):
    """GET: anyone. POST: the station owner."""

    def get_authenticators(self):  # type: ignore[no-untyped-def]
        if self.request is not None and self.request.method == "POST":
            return [cls() for cls in _owner_api_settings()[0]]
        return []

    def get_permissions(self):  # type: ignore[no-untyped-def]
        if self.request.method == "POST":
            return [cls() for cls in _owner_api_settings()[1]]
        return []

    @extend_schema(responses={200: MeshPeerSerializer(many=True)}, summary="Known stations",
                   operation_id="peers_list")
    def get(self, request: Request) -> Response:
        return Response(peers_live_data())

    @extend_schema(request=MeshPeerCreateSerializer,
                   responses={201: MeshPeerSerializer, 400: ErrorResponseSerializer,
                              401: ErrorResponseSerializer, 403: ErrorResponseSerializer},
                   summary="Add a peer by endpoint (owner)", operation_id="peers_create")
    def post(self, request: Request) -> Response:
        serializer = MeshPeerCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            peer = services.peer_add(endpoint=serializer.validated_data["endpoint"],
                                     callsign=serializer.validated_data.get("callsign"))
        except services.MeshError as exc:
            raise ApiError(exc.code, exc.detail) from exc
        return Response(MeshPeerSerializer(peer).data, status=201)


class LocalServersApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: MeshLocalServersSerializer},
                   summary="Stations found on the LAN by mDNS")
    def get(self, request: Request) -> Response:
        return Response(MeshLocalServersSerializer({"servers": selectors.local_servers()}).data)


class MeshPingApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: MeshPingSerializer},
                   summary="Liveness probe between stations (cheap, no database)")
    def get(self, request: Request) -> Response:
        return Response({"stationId": _station_id(), "time": now_ms()})


class MeshBlacklistApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: MeshBlacklistEntrySerializer(many=True)},
                   summary="Blacklist entries heard from the mesh: applied, or kept as reports")
    def get(self, request: Request) -> Response:
        rows = MeshBlacklistEntry.objects.all()[:1000]
        return Response(MeshBlacklistEntrySerializer(rows, many=True).data)


class MeshNetworkApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: MeshNetworkSerializer},
                   summary="Network mode (online / offline / degraded) and the probe results")
    def get(self, request: Request) -> Response:
        return Response(selectors.network_mode_get())


class RouteListApi(APIView):
    """GET: anyone, as GET /api/peers (no authentication, no permission check)."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="routes_list", summary="Routing table: how meshd reaches each station",
        description="meshd's distance-vector routing table as it last stored it (on every "
                    "change, at most about once a second): for each station reachable through "
                    "the mesh, the neighbour traffic goes to (`nextHop`), the route's `cost` "
                    "(sum of link costs, lower is better), `hops`, the destination's `seqno`, "
                    "and `age`, seconds since an update refreshed it. `lanOnly` is the best "
                    "route over LAN/IP links only (for traffic that must not go on the air), "
                    "null when there is none. Ordered by cost, then callsign. Callsigns meshd "
                    "did not know come from the peer list; empty when unknown there too. An "
                    "empty list: meshd has learnt no route (no link up, or meshd not running).",
        parameters=[OpenApiParameter(
            "destination", str,
            description="Only the route to this station: a station id (32 hex digits) or a "
                        "callsign.")],
        responses={200: MeshRoutesSerializer,
                   400: OpenApiResponse(ErrorResponseSerializer,
                                        description="`destination` is neither a station id "
                                                    "nor a callsign (`bad_destination`).")},
    )
    def get(self, request: Request) -> Response:
        destination = request.query_params.get("destination") or None
        try:
            rows = selectors.routes(destination=destination)
        except ValueError as exc:
            raise ApiError("bad_destination", f"destination: {exc}") from exc
        return Response(MeshRoutesSerializer({"count": len(rows), "routes": rows},
                                             context={"now": timezone.now()}).data)
