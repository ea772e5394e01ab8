"""Shapes of the mailbox API for the schema (camelCase; binary fields base64). The services
check the bodies themselves, so each refusal carries its own code and status (413, 422)."""

from __future__ import annotations

from rest_framework import serializers


class MailboxNonceResponseSerializer(serializers.Serializer):
    nonce = serializers.CharField()
    stationId = serializers.CharField()
    message = serializers.CharField(help_text="Base64 of the exact bytes to sign with the "
                                              "license key: b\"meshsite-mailbox-device-v1\\n"
                                              "station:<stationId>\\nnonce:<nonce>\\n\".")
    expiresIn = serializers.IntegerField()


class MailboxPreKeySerializer(serializers.Serializer):
    keyId = serializers.IntegerField(min_value=1, max_value=2**24 - 1)
    publicKey = serializers.CharField(help_text="0x05 + 32-byte X25519 key, base64.")


class MailboxSignedPreKeySerializer(serializers.Serializer):
    keyId = serializers.IntegerField(min_value=0, max_value=2**24 - 1)
    publicKey = serializers.CharField(help_text="0x05 + 32-byte X25519 key, base64.")
    signature = serializers.CharField(help_text="XEdDSA by the identity key over publicKey's "
                                                "33 bytes, base64.")


class MailboxDeviceRequestSerializer(serializers.Serializer):
    certificate = serializers.CharField(help_text="PEM of the license certificate.")
    chain = serializers.ListField(child=serializers.CharField(), required=False)
    nonce = serializers.CharField()
    signature = serializers.CharField(help_text="Base64 signature by the license key.")
    identityKey = serializers.CharField()
    signedPreKey = MailboxSignedPreKeySerializer()
    registrationId = serializers.IntegerField(min_value=1)
    oneTimePreKeys = MailboxPreKeySerializer(many=True, required=False)


class MailboxDeviceResponseSerializer(serializers.Serializer):
    callsign = serializers.CharField()
    deviceId = serializers.IntegerField()
    token = serializers.CharField(help_text="The device token (Authorization: Bearer ...); "
                                            "shown once.")


class MailboxKeysRequestSerializer(serializers.Serializer):
    signedPreKey = MailboxSignedPreKeySerializer(required=False)
    oneTimePreKeys = MailboxPreKeySerializer(many=True, required=False)


class MailboxKeysResponseSerializer(serializers.Serializer):
    oneTimePreKeyCount = serializers.IntegerField()
    low = serializers.BooleanField(help_text="At or under MESHSITE_MAILBOX_LOW_PREKEYS: upload "
                                             "more.")


class MailboxBundleDeviceSerializer(serializers.Serializer):
    deviceId = serializers.IntegerField()
    registrationId = serializers.IntegerField()
    signedPreKey = MailboxSignedPreKeySerializer()
    oneTimePreKey = MailboxPreKeySerializer(allow_null=True)


class MailboxBundleSerializer(serializers.Serializer):
    callsign = serializers.CharField()
    identityKey = serializers.CharField()
    devices = MailboxBundleDeviceSerializer(many=True)


class MailboxEnvelopeInSerializer(serializers.Serializer):
    deviceId = serializers.IntegerField()
    registrationId = serializers.IntegerField()
    type = serializers.IntegerField(min_value=0, max_value=255)
    content = serializers.CharField(help_text="Opaque ciphertext, base64, at most 96 KiB.")


class MailboxSendRequestSerializer(serializers.Serializer):
    messages = MailboxEnvelopeInSerializer(many=True)
    timestamp = serializers.IntegerField(help_text="The sender's clock, ms since the epoch.")
    waitForRoute = serializers.BooleanField(
        required=False, help_text="For an operator homed elsewhere with no LAN/IP route now: "
                                  "false (default) answers 503 no_lan_route; true keeps the "
                                  "envelopes here until such a route exists, within their "
                                  "expiry (202).")


class MailboxSendResponseSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.CharField())
    forwarded = serializers.CharField(
        required=False, help_text="For an operator homed elsewhere: `delivered` (the home "
                                  "station acknowledged; 200) or `queued` (kept here until it "
                                  "does; 202, `ids` empty, `batch` names it).")
    batch = serializers.CharField(required=False)


class MailboxMismatchSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    missingDevices = serializers.ListField(child=serializers.IntegerField())
    extraDevices = serializers.ListField(child=serializers.IntegerField())


class MailboxStaleSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    staleDevices = serializers.ListField(child=serializers.IntegerField())
