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


class RfHeardSerializer(serializers.Serializer):
    source = serializers.CharField(help_text="AX.25 source address, CALL-SSID.")
    at = serializers.FloatField(help_text="Unix time last heard.")


class RfStatusSerializer(serializers.Serializer):
    configured = serializers.BooleanField(help_text="MESHSITE_RF_KISS is set.")
    url = serializers.CharField(required=False, help_text="The TNC (MESHSITE_RF_KISS).")
    state = serializers.ChoiceField(
        required=False, choices=["connecting", "connected", "waiting", "stopped", "unknown"],
        help_text="The TNC connection; `waiting` to retry after `lastError`; `unknown` while "
                  "meshd does not run.")
    since = serializers.FloatField(required=False, help_text="Unix time of the last change.")
    lastError = serializers.CharField(required=False, allow_blank=True)
    nextAttempt = serializers.FloatField(required=False, allow_null=True)
    connects = serializers.IntegerField(required=False)
    framesIn = serializers.IntegerField(required=False)
    framesOut = serializers.IntegerField(required=False)
    bytesOut = serializers.IntegerField(required=False)
    droppedIn = serializers.IntegerField(required=False)
    undecodable = serializers.IntegerField(required=False)
    persistence = serializers.IntegerField(
        required=False, help_text="The TNC's KISS persistence (P: keys up with probability "
                                  "(P + 1) / 256 per slot), set from the stations heard.")
    heard = RfHeardSerializer(many=True, required=False)
    ssid = serializers.IntegerField(required=False)
    bitrate = serializers.IntegerField(required=False)
    airtimeShare = serializers.FloatField(required=False)
    idInterval = serializers.IntegerField(required=False)


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
    rf = RfStatusSerializer(required=False, help_text="The radio link (docs/radio.md).")
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
