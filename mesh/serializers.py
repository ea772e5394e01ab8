from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mesh.models import Route


class MeshLinkSerializer(serializers.Serializer):
    kind = serializers.CharField()
    address = serializers.CharField()
    state = serializers.CharField()
    connected = serializers.BooleanField()
    lastHeard = serializers.DateTimeField(source="last_heard", allow_null=True)
    rttMs = serializers.FloatField(source="rtt_ms", allow_null=True)
    detail = serializers.CharField()


class MeshPeerSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    stationId = serializers.CharField(source="station_id", allow_null=True)
    endpoint = serializers.CharField()
    callsign = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.CharField())
    version = serializers.CharField()
    lastContact = serializers.DateTimeField(source="last_contact", allow_null=True)
    discoveryMethod = serializers.CharField(source="discovery_method")
    state = serializers.CharField()
    rttMs = serializers.FloatField(source="rtt_ms", allow_null=True)
    authenticated = serializers.BooleanField()
    linked = serializers.SerializerMethodField(
        help_text="An authenticated /ws/coordinate link to this station is up now, whichever "
                  "side dialled it (meshd's live view).")
    links = MeshLinkSerializer(many=True)

    @extend_schema_field(serializers.BooleanField())
    def get_linked(self, peer: object) -> bool:
        return False  # the view fills it in from meshd's live view


class MeshPeerCreateSerializer(serializers.Serializer):
    endpoint = serializers.CharField(max_length=300)
    callsign = serializers.CharField(max_length=16, required=False, allow_blank=True)


class MeshLocalServerSerializer(serializers.Serializer):
    callsign = serializers.CharField()
    stationId = serializers.CharField(source="station_id", allow_null=True)
    endpoint = serializers.CharField()
    signalingUrl = serializers.SerializerMethodField()
    capabilities = serializers.ListField(child=serializers.CharField())
    state = serializers.CharField()

    def get_signalingUrl(self, peer) -> str:
        endpoint = peer.endpoint or ""
        return ("wss" + endpoint.removeprefix("https") if endpoint.startswith("https")
                else "ws" + endpoint.removeprefix("http")) + "/ws/signal"


class MeshLocalServersSerializer(serializers.Serializer):
    servers = MeshLocalServerSerializer(many=True)


class MeshPingSerializer(serializers.Serializer):
    stationId = serializers.CharField()
    time = serializers.IntegerField()


class MeshBlacklistEntrySerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    reason = serializers.CharField()
    timestamp = serializers.IntegerField()
    signer = serializers.CharField(source="signer_station_id")
    status = serializers.CharField()
    statusDetail = serializers.CharField(source="status_detail")
    receivedFrom = serializers.CharField(source="received_from")


class MeshNetworkSerializer(serializers.Serializer):
    mode = serializers.CharField()
    since = serializers.FloatField(required=False, allow_null=True)
    checkedAt = serializers.FloatField(required=False)
    targets = serializers.ListField(child=serializers.DictField(), required=False)
    detail = serializers.CharField(required=False)


class MeshRouteLanOnlySerializer(serializers.Serializer):
    nextHop = serializers.CharField(source="lan_next_hop",
                                    help_text="Station id of the next hop over LAN/IP links only.")
    cost = serializers.IntegerField(source="lan_cost")
    hops = serializers.IntegerField(source="lan_hops")


class MeshRouteSerializer(serializers.Serializer):
    """One route of the station's routing table."""

    destination = serializers.CharField(help_text="Station id of the destination.")
    callsign = serializers.CharField(
        help_text="The destination's callsign (meshd's, else the peer list's); empty: unknown.")
    nextHop = serializers.CharField(source="next_hop",
                                    help_text="Station id of the neighbour traffic goes to.")
    nextHopCallsign = serializers.CharField(source="next_hop_callsign",
                                            help_text="The next hop's callsign; empty: unknown.")
    cost = serializers.IntegerField(help_text="Route metric, lower is better; 65535: unreachable.")
    hops = serializers.IntegerField(help_text="Links to the destination (1: a neighbour).")
    seqno = serializers.IntegerField(help_text="The destination's sequence number (16-bit).")
    age = serializers.SerializerMethodField(
        help_text="Seconds since an update last refreshed the route, one decimal.")
    lanOnly = serializers.SerializerMethodField(
        help_text="The best route over LAN/IP links only (no hop on the air), or null when "
                  "there is none.")

    def get_age(self, route: Route) -> float:
        # context["now"]: one instant for every age in a response
        return route.age_at(self.context.get("now") or timezone.now())

    @extend_schema_field(MeshRouteLanOnlySerializer(allow_null=True))
    def get_lanOnly(self, route: Route) -> dict[str, Any] | None:
        if not route.lan_next_hop:
            return None
        return MeshRouteLanOnlySerializer(route).data


class MeshRoutesSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many routes follow.")
    routes = MeshRouteSerializer(many=True)
