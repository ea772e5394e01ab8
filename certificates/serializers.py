"""Request and response shapes of the certificates API (camelCase, station-api.md)."""

from __future__ import annotations

from rest_framework import serializers

from certificates.models import Certificate, CertificateState, TrustLevel

_PEM_MAX = 64 * 1024


class ClaimNonceResponseSerializer(serializers.Serializer):
    nonce = serializers.CharField()
    stationId = serializers.CharField()
    publicKey = serializers.CharField(help_text="The station's raw Ed25519 public key, base64.")
    message = serializers.CharField(
        help_text="Base64 of the exact bytes to sign with the license certificate's key: "
                  "delegation_message(stationId, publicKey, nonce).")
    expiresIn = serializers.IntegerField(help_text="Seconds the nonce stays usable.")


class ClaimStationSerializer(serializers.Serializer):
    callsign = serializers.CharField(max_length=40)
    metadata = serializers.JSONField(required=False, default=dict)


class ClaimStationRequestSerializer(serializers.Serializer):
    certificate = serializers.CharField(max_length=_PEM_MAX, trim_whitespace=False,
                                        help_text="PEM of the license certificate.")
    chain = serializers.ListField(child=serializers.CharField(max_length=_PEM_MAX,
                                                              trim_whitespace=False),
                                  required=False, default=list, max_length=16)
    station = ClaimStationSerializer()
    nonce = serializers.CharField(max_length=200)
    signature = serializers.CharField(
        max_length=8192, help_text="Base64 signature over `message` from the nonce endpoint.")


class ClaimStationResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    owner = serializers.CharField()
    stationId = serializers.CharField()
    signalingUrl = serializers.CharField()
    accessToken = serializers.CharField(help_text="Owner bearer token: keep it secret.")
    adminUsername = serializers.CharField()
    adminPassword = serializers.CharField(help_text="One-time password for /admin/.")
    expired = serializers.BooleanField(help_text="The certificate is expired (accepted by "
                                                 "setting).")


class CertificateSummarySerializer(serializers.ModelSerializer):
    licenseClass = serializers.CharField(source="license_class")
    trustLevel = serializers.CharField(source="trust_level")
    canIssue = serializers.BooleanField(source="can_issue")
    notAfter = serializers.DateTimeField(source="not_after")

    class Meta:
        model = Certificate
        fields = ["fingerprint", "callsign", "licenseClass", "trustLevel", "state", "canIssue",
                  "notAfter"]


class CertificateExtensionsSerializer(serializers.Serializer):
    callsign = serializers.CharField(allow_blank=True)
    licenseClass = serializers.CharField(allow_blank=True)
    canIssue = serializers.BooleanField()
    isCa = serializers.BooleanField()
    issuerChain = serializers.ListField(child=serializers.CharField(),
                                        help_text="Fingerprints of the issuers, nearest first.")
    qsoNotBefore = serializers.DateField(allow_null=True)
    qsoNotAfter = serializers.DateField(allow_null=True)
    dxcc = serializers.IntegerField(allow_null=True)


class CertificateValiditySerializer(serializers.Serializer):
    notBefore = serializers.DateTimeField()
    notAfter = serializers.DateTimeField()


class CertificateDetailSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    serial = serializers.CharField()
    subject = serializers.CharField()
    issuer = serializers.CharField()
    validity = CertificateValiditySerializer()
    extensions = CertificateExtensionsSerializer()
    trustLevel = serializers.CharField()
    state = serializers.CharField()
    source = serializers.CharField()
    certificate = serializers.CharField(help_text="PEM.")
    chain = serializers.ListField(child=serializers.CharField(), help_text="Issuers' PEM.")
    createdAt = serializers.DateTimeField()


class CertificateAddRequestSerializer(serializers.Serializer):
    certificate = serializers.CharField(max_length=_PEM_MAX, trim_whitespace=False)
    chain = serializers.ListField(child=serializers.CharField(max_length=_PEM_MAX,
                                                              trim_whitespace=False),
                                  required=False, default=list, max_length=16)
    trustLevel = serializers.ChoiceField(choices=TrustLevel.values, default=TrustLevel.PEER)


class CertificateListQuerySerializer(serializers.Serializer):
    trustLevel = serializers.ChoiceField(choices=TrustLevel.values, required=False)
    state = serializers.ChoiceField(choices=CertificateState.values, required=False)
    callsign = serializers.CharField(required=False, max_length=20)


class BlacklistRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, allow_blank=True, required=False,
                                   default="")


class BlacklistResponseSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    blacklisted = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)
    createdAt = serializers.DateTimeField(allow_null=True)


class ProofOfLicenseSerializer(serializers.Serializer):
    certificate = serializers.CharField(max_length=_PEM_MAX, trim_whitespace=False)
    chain = serializers.ListField(child=serializers.CharField(max_length=_PEM_MAX,
                                                              trim_whitespace=False),
                                  required=False, default=list, max_length=16)
    signature = serializers.CharField(
        max_length=8192, help_text="Base64 signature over the CSR's DER bytes with the "
                                   "certificate's key.")


class IssueCertificateRequestSerializer(serializers.Serializer):
    csr = serializers.CharField(max_length=_PEM_MAX, trim_whitespace=False)
    proofOfLicense = ProofOfLicenseSerializer()
    licenseClass = serializers.CharField(max_length=40, required=False, allow_blank=True)
    canIssue = serializers.BooleanField(required=False, default=False)


class IssueCertificateResponseSerializer(serializers.Serializer):
    certificate = serializers.CharField()
    chain = serializers.ListField(child=serializers.CharField())
    fingerprint = serializers.CharField()
    serial = serializers.CharField()
    callsign = serializers.CharField()
    notAfter = serializers.DateTimeField()


class TrustRootAddRequestSerializer(serializers.Serializer):
    certificate = serializers.CharField(max_length=_PEM_MAX, trim_whitespace=False)


class OwnerTokenResponseSerializer(serializers.Serializer):
    accessToken = serializers.CharField()
    owner = serializers.CharField()


class RevokedResponseSerializer(serializers.Serializer):
    revoked = serializers.IntegerField()


class StationCredentialSerializer(serializers.Serializer):
    stationId = serializers.CharField()
    publicKey = serializers.CharField()
    callsign = serializers.CharField()
    certificate = serializers.CharField()
    chain = serializers.ListField(child=serializers.CharField())
    nonce = serializers.CharField()
    delegation = serializers.CharField()
