from __future__ import annotations

from rest_framework import serializers

from catalog.entries import callsign_for_url
from catalog.models import ContentEntry, ContentReplica


class ContentEntrySerializer(serializers.ModelSerializer):
    """One version in the catalog, as `/api/content-catalog` lists it."""

    entryId = serializers.CharField(source="entry_id")
    hash = serializers.CharField(source="content_hash")
    contentType = serializers.CharField(source="content_type")
    origin = serializers.CharField(source="origin_callsign")
    originStationId = serializers.CharField(source="origin_station_id")
    hasBody = serializers.BooleanField(source="has_body")
    current = serializers.BooleanField(source="is_current")
    url = serializers.SerializerMethodField()
    versionUrl = serializers.SerializerMethodField()

    class Meta:
        model = ContentEntry
        fields = ["entryId", "path", "hash", "size", "contentType", "priority", "origin",
                  "originStationId", "created", "modified", "deleted", "conflict", "current",
                  "hasBody", "pinned", "url", "versionUrl"]

    def get_url(self, entry: ContentEntry) -> str:
        return f"/c/{callsign_for_url(entry.origin_callsign)}/{entry.path}"

    def get_versionUrl(self, entry: ContentEntry) -> str:
        return f"{self.get_url(entry)}?version={entry.entry_id}"


class ContentReplicaSerializer(serializers.ModelSerializer):
    stationId = serializers.CharField(source="station_id")
    seenAt = serializers.DateTimeField(source="seen_at")

    class Meta:
        model = ContentReplica
        fields = ["stationId", "callsign", "seenAt"]


class ContentEntryDetailSerializer(ContentEntrySerializer):
    """An entry with its signature, replicas and the other versions of its path."""

    publicKey = serializers.CharField(source="origin_public_key")
    supersedes = serializers.CharField()
    signature = serializers.CharField()
    localPriority = serializers.IntegerField(source="local_priority", allow_null=True)
    demand = serializers.IntegerField()
    lastAccessed = serializers.DateTimeField(source="last_accessed", allow_null=True)
    verifiedAt = serializers.DateTimeField(source="verified_at", allow_null=True)
    replicas = ContentReplicaSerializer(many=True)
    versions = serializers.SerializerMethodField()

    class Meta(ContentEntrySerializer.Meta):
        fields = [*ContentEntrySerializer.Meta.fields, "publicKey", "supersedes", "signature",
                  "localPriority", "demand", "lastAccessed", "verifiedAt", "replicas",
                  "versions"]

    def get_versions(self, entry: ContentEntry) -> list[dict]:
        from catalog.selectors import path_versions

        return ContentEntrySerializer(path_versions(entry), many=True).data


class ContentCatalogSerializer(serializers.Serializer):
    """The catalog page (station-api.md): summary plus one page of entries."""

    serverId = serializers.CharField()
    callsign = serializers.CharField(allow_null=True)
    lastUpdated = serializers.DateTimeField(allow_null=True)
    totalSize = serializers.IntegerField()
    entryCount = serializers.IntegerField()
    count = serializers.IntegerField(help_text="Entries matching the filters.")
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    entries = ContentEntrySerializer(many=True)


class ContentPublishMultipartSerializer(serializers.Serializer):
    """Publish with multipart/form-data. For a raw body instead, send the bytes with their
    Content-Type and pass `path` and `priority` as query parameters."""

    file = serializers.FileField()
    path = serializers.CharField(max_length=300)
    priority = serializers.IntegerField(min_value=1, max_value=4)
    contentType = serializers.CharField(required=False,
                                        help_text="Defaults to the file part's type.")


class DownloadTokenNonceSerializer(serializers.Serializer):
    nonce = serializers.CharField(help_text="Single use; sign it within expiresIn seconds.")
    stationId = serializers.CharField(help_text="This station's id (it is in the message).")
    message = serializers.CharField(
        help_text="Base64 of the exact bytes to sign: b'meshsite-download-token-v1\\n"
                  "station:<stationId>\\nnonce:<nonce>\\n'.")
    expiresIn = serializers.IntegerField()


class DownloadTokenRequestSerializer(serializers.Serializer):
    certificate = serializers.CharField(help_text="The license certificate, PEM.")
    chain = serializers.ListField(child=serializers.CharField(), required=False, default=list,
                                  help_text="Intermediate certificates, PEM.")
    nonce = serializers.CharField(max_length=128)
    signature = serializers.CharField(
        max_length=2048, help_text="Base64 signature of the message by the certificate's key "
                                   "(RSA PKCS#1 v1.5 SHA-256, ECDSA SHA-256 or Ed25519).")


class DownloadTokenResponseSerializer(serializers.Serializer):
    callsign = serializers.CharField()
    token = serializers.CharField(help_text="Give it to pip as "
                                            "http://CALLSIGN:TOKEN@host/simple/.")
    expires = serializers.DateTimeField()
