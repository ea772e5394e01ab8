from __future__ import annotations

from rest_framework import serializers


class ErrorResponseSerializer(serializers.Serializer):
    """The shape of every API error."""

    error = serializers.CharField(help_text="Machine-readable code, e.g. `bad_signature`.")
    detail = serializers.CharField(help_text="What was wrong and what to do about it.")


class SignalingStatusSerializer(serializers.Serializer):
    url = serializers.CharField()
    connected = serializers.IntegerField(help_text="Clients connected across all processes.")


class HealthCheckResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField(help_text="Why it failed, or how it answered.")


class StationStatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["unclaimed", "claimed", "active"])
    owner = serializers.CharField(allow_null=True)
    version = serializers.CharField()
    endpoint = serializers.CharField()
    signaling = SignalingStatusSerializer()
    uptime = serializers.IntegerField(help_text="Seconds since this process started.")
    networkMode = serializers.ChoiceField(choices=["online", "offline", "degraded", "unknown"])
    ownerBlacklisted = serializers.BooleanField(
        required=False, help_text="The owner's certificate is blacklisted here: the station "
                                  "cannot prove itself to others until the entry is lifted.")
    networkDetail = serializers.CharField(
        required=False, help_text="Why the mode is what it is: the probe results, or how to set "
                                  "probe targets (MESHSITE_CONNECTIVITY_TARGETS) when none are.")
    parts = serializers.DictField(
        child=HealthCheckResultSerializer(),
        help_text="Every part of the station (database, redis, web, worker, meshd) as in "
                  "`/healthz`.")


class StationInfoSerializer(serializers.Serializer):
    type = serializers.CharField()
    version = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.CharField())
    callsign = serializers.CharField(allow_null=True)
    signalingUrl = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "failing"])
    failed = serializers.ListField(child=serializers.CharField())
    checks = serializers.DictField(
        child=HealthCheckResultSerializer(),
        help_text="One entry per part: database, redis, web, worker, meshd.")
    networkMode = serializers.ChoiceField(
        choices=["online", "offline", "degraded", "unknown"],
        help_text="The last connectivity check's verdict; information, not a health check.")
