from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


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
