from __future__ import annotations

from django.urls import path

from mesh.api import (
    LocalServersApi,
    MeshBlacklistApi,
    MeshNetworkApi,
    MeshPingApi,
    PeerListCreateApi,
    RouteListApi,
)

urlpatterns = [
    path("api/peers", PeerListCreateApi.as_view(), name="mesh-peers"),
    path("api/local-servers", LocalServersApi.as_view(), name="mesh-local-servers"),
    path("api/mesh/ping", MeshPingApi.as_view(), name="mesh-ping"),
    path("api/mesh/blacklist", MeshBlacklistApi.as_view(), name="mesh-blacklist"),
    path("api/mesh/network", MeshNetworkApi.as_view(), name="mesh-network"),
    path("api/routes", RouteListApi.as_view(), name="mesh-routes"),
]
