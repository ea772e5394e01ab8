"""Certificates API: claim, trust store, blacklist, CA, owner tokens (thin views)."""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from certificates import selectors, services
from certificates.auth import IsStationOwner, OwnerTokenAuthentication
from certificates.errors import CertificateError
from certificates.models import Certificate, CertificateSource, OwnerToken, StationState
from certificates.serializers import (
    BlacklistRequestSerializer,
    BlacklistResponseSerializer,
    CertificateAddRequestSerializer,
    CertificateDetailSerializer,
    CertificateListQuerySerializer,
    CertificateSummarySerializer,
    ClaimNonceResponseSerializer,
    ClaimStationRequestSerializer,
    ClaimStationResponseSerializer,
    IssueCertificateRequestSerializer,
    IssueCertificateResponseSerializer,
    OwnerTokenResponseSerializer,
    RevokedResponseSerializer,
    StationCredentialSerializer,
    TrustRootAddRequestSerializer,
)
from certificates.x509tools import to_pem
from meshsite.api import signaling_url
from meshsite.api_errors import ApiError
from meshsite.serializers import ErrorResponseSerializer


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=description)


E400 = _error("Invalid input: the `error` code names what (malformed, expired, bad_proof, ...).")
E401 = _error("Missing or invalid owner token.")
E403 = _error("Not the station owner, or refused (already_claimed, not_a_ca_station, ...).")
E404 = _error("No such certificate.")
E409 = _error("The station is not claimed yet (not_claimed).")
E415 = _error("The body is not JSON (send Content-Type: application/json).")
E429 = _error("Rate limited; see the Retry-After header.")


class CertificatesApiView(APIView):
    """Base: owner token or admin session; `CertificateError` becomes a JSON API error."""

    authentication_classes = [OwnerTokenAuthentication, SessionAuthentication]
    permission_classes = [AllowAny]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, CertificateError):
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            exc = ApiError(exc.code, exc.detail, status_code=exc.http_status(), headers=headers)
        return super().handle_exception(exc)


def _validated(serializer_class: type, data: Any) -> dict:
    if not isinstance(data, dict):
        raise ApiError("invalid", "The request body must be a JSON object.")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def certificate_detail_data(row: Certificate) -> dict[str, Any]:
    chain = selectors.certificate_chain(row)
    return {
        "fingerprint": row.fingerprint,
        "serial": row.serial,
        "subject": row.subject,
        "issuer": row.issuer,
        "validity": {"notBefore": row.not_before, "notAfter": row.not_after},
        "extensions": {
            "callsign": row.callsign,
            "licenseClass": row.license_class,
            "canIssue": row.can_issue,
            "isCa": row.is_ca,
            "issuerChain": [c.fingerprint for c in chain],
            "qsoNotBefore": row.qso_not_before,
            "qsoNotAfter": row.qso_not_after,
            "dxcc": row.dxcc,
        },
        "trustLevel": row.trust_level,
        "state": row.state,
        "source": row.source,
        "certificate": row.pem,
        "chain": [c.pem for c in chain],
        "createdAt": row.created_at,
    }


class ClaimNonceApi(CertificatesApiView):
    authentication_classes: list = []

    @extend_schema(request=None, responses={200: ClaimNonceResponseSerializer, 403: E403},
                   summary="A single-use nonce to claim this station", tags=["claim"])
    def post(self, request: Request) -> Response:
        station = selectors.station_get()
        if station.state != StationState.UNCLAIMED:
            raise CertificateError("already_claimed",
                                   f"This station already belongs to {station.owner_callsign}.")
        nonce = services.nonce_issue(purpose="claim")
        message = services.delegation_message(station_id=station.station_id,
                                              public_key_b64=station.public_key, nonce=nonce)
        return Response({"nonce": nonce, "stationId": station.station_id,
                         "publicKey": station.public_key,
                         "message": base64.b64encode(message).decode("ascii"),
                         "expiresIn": settings.MESHSITE_NONCE_TTL})


class ClaimStationApi(CertificatesApiView):
    authentication_classes: list = []

    @extend_schema(request=ClaimStationRequestSerializer,
                   responses={200: ClaimStationResponseSerializer, 400: E400, 403: E403,
                              415: E415},
                   summary="Claim this station with a license certificate", tags=["claim"])
    def post(self, request: Request) -> Response:
        data = _validated(ClaimStationRequestSerializer, request.data)
        result = services.station_claim(
            certificate=data["certificate"], chain=data["chain"],
            callsign=data["station"]["callsign"], metadata=data["station"].get("metadata"),
            nonce=data["nonce"], signature=data["signature"])
        return Response({
            "success": True, "owner": result.owner, "stationId": result.station.station_id,
            "signalingUrl": signaling_url(request), "accessToken": result.access_token,
            "adminUsername": result.admin_username, "adminPassword": result.admin_password,
            "expired": result.license.expired,
        })


class CertificateListApi(CertificatesApiView, generics.GenericAPIView):
    serializer_class = CertificateSummarySerializer

    def get_permissions(self) -> list:
        return [IsStationOwner()] if self.request.method == "POST" else [AllowAny()]

    @extend_schema(parameters=[CertificateListQuerySerializer],
                   responses={200: CertificateSummarySerializer(many=True), 400: E400,
                              401: E401, 404: _error("No such page.")},
                   summary="Known certificates (paginated)", tags=["certificates"])
    def get(self, request: Request) -> Response:
        query = CertificateListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        queryset = selectors.certificate_list(trust_level=params.get("trustLevel"),
                                              state=params.get("state"),
                                              callsign=params.get("callsign"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(CertificateSummarySerializer(page, many=True).data)

    @extend_schema(request=CertificateAddRequestSerializer,
                   responses={201: CertificateDetailSerializer, 200: CertificateDetailSerializer,
                              400: E400, 401: E401, 403: E403, 415: E415},
                   summary="Add a certificate after chain validation (owner)",
                   tags=["certificates"])
    def post(self, request: Request) -> Response:
        data = _validated(CertificateAddRequestSerializer, request.data)
        row, created = services.certificate_add(certificate=data["certificate"],
                                                chain=data["chain"],
                                                trust_level=data["trustLevel"],
                                                source=CertificateSource.API)
        return Response(certificate_detail_data(row),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _get_or_404(fingerprint: str) -> Certificate:
    row = selectors.certificate_get(fingerprint)
    if row is None:
        raise ApiError("not_found", f"No certificate with fingerprint {fingerprint[:80]!r} is "
                       "known here.", status_code=404)
    return row


class CertificateDetailApi(CertificatesApiView):
    @extend_schema(responses={200: CertificateDetailSerializer, 401: E401, 404: E404},
                   summary="One certificate with its chain", tags=["certificates"])
    def get(self, request: Request, fingerprint: str) -> Response:
        return Response(certificate_detail_data(_get_or_404(fingerprint)))


def _requester(request: Request) -> str:
    if isinstance(request.auth, OwnerToken):
        return request.auth.callsign
    return getattr(request.user, "username", "") or ""


class CertificateBlacklistApi(CertificatesApiView):
    permission_classes = [IsStationOwner]

    @extend_schema(request=BlacklistRequestSerializer,
                   responses={200: BlacklistResponseSerializer, 400: E400, 401: E401, 403: E403,
                              404: E404, 415: E415},
                   summary="Blacklist a certificate (owner)", tags=["certificates"])
    def post(self, request: Request, fingerprint: str) -> Response:
        row = _get_or_404(fingerprint)
        data = _validated(BlacklistRequestSerializer, request.data or {})
        entry = services.certificate_blacklist(fingerprint=row.fingerprint,
                                               reason=data["reason"],
                                               created_by=_requester(request))
        return Response({"fingerprint": row.fingerprint, "blacklisted": True,
                         "reason": entry.reason, "createdAt": entry.created_at})

    @extend_schema(responses={200: BlacklistResponseSerializer, 401: E401, 403: E403, 404: E404},
                   summary="Lift a certificate's blacklisting (owner)", tags=["certificates"])
    def delete(self, request: Request, fingerprint: str) -> Response:
        row = _get_or_404(fingerprint)
        services.blacklist_lift(fingerprint=row.fingerprint, lifted_by=_requester(request))
        return Response({"fingerprint": row.fingerprint, "blacklisted": False, "reason": "",
                         "createdAt": None})


class TrustRootListApi(CertificatesApiView, generics.GenericAPIView):
    serializer_class = CertificateSummarySerializer

    def get_permissions(self) -> list:
        return [IsStationOwner()] if self.request.method == "POST" else [AllowAny()]

    @extend_schema(responses={200: CertificateSummarySerializer(many=True), 401: E401,
                              404: _error("No such page.")},
                   summary="Configured trust roots", tags=["trust roots"])
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.certificate_list(trust_level="root"))
        return self.get_paginated_response(CertificateSummarySerializer(page, many=True).data)

    @extend_schema(request=TrustRootAddRequestSerializer,
                   responses={201: CertificateDetailSerializer, 200: CertificateDetailSerializer,
                              400: E400, 401: E401, 403: E403, 415: E415},
                   summary="Add a trust root (owner)", tags=["trust roots"])
    def post(self, request: Request) -> Response:
        data = _validated(TrustRootAddRequestSerializer, request.data)
        row, created = services.trustroot_add(certificate=data["certificate"],
                                              source=CertificateSource.API)
        return Response(certificate_detail_data(row),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class TrustRootDeleteApi(CertificatesApiView):
    permission_classes = [IsStationOwner]

    @extend_schema(responses={204: None, 401: E401, 403: E403, 404: E404},
                   summary="Stop trusting a root (owner)", tags=["trust roots"])
    def delete(self, request: Request, fingerprint: str) -> Response:
        if not services.trustroot_remove(fingerprint=fingerprint):
            raise ApiError("not_found", "No trust root with that fingerprint.", status_code=404)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CertificateIssueApi(CertificatesApiView):
    permission_classes = [IsStationOwner]

    @extend_schema(request=IssueCertificateRequestSerializer,
                   responses={201: IssueCertificateResponseSerializer, 400: E400, 401: E401,
                              403: E403, 415: E415, 429: E429},
                   summary="Issue a license certificate from a CSR (CA stations, owner)",
                   tags=["certificate authority"])
    def post(self, request: Request) -> Response:
        data = _validated(IssueCertificateRequestSerializer, request.data)
        proof = data["proofOfLicense"]
        result = services.certificate_issue(
            csr=data["csr"], proof_certificate=proof["certificate"], proof_chain=proof["chain"],
            proof_signature=proof["signature"], license_class=data.get("licenseClass") or None,
            can_issue=data["canIssue"], requested_by=_requester(request),
            remote_addr=request.META.get("REMOTE_ADDR", ""))
        record = result.record
        return Response({"certificate": to_pem(result.certificate),
                         "chain": [to_pem(c) for c in result.chain],
                         "fingerprint": record.fingerprint, "serial": record.serial,
                         "callsign": record.callsign, "notAfter": record.not_after},
                        status=status.HTTP_201_CREATED)


class OwnerTokenRotateApi(CertificatesApiView):
    permission_classes = [IsStationOwner]

    @extend_schema(request=None, responses={200: OwnerTokenResponseSerializer, 401: E401,
                                            403: E403, 409: E409},
                   summary="Revoke every owner token and get a new one", tags=["claim"])
    def post(self, request: Request) -> Response:
        token = services.owner_token_rotate(label="api")
        return Response({"accessToken": token, "owner": selectors.station_get().owner_callsign})


class OwnerTokenRevokeApi(CertificatesApiView):
    permission_classes = [IsStationOwner]

    @extend_schema(request=None, responses={200: RevokedResponseSerializer, 400: E400,
                                            401: E401, 403: E403},
                   summary="Revoke the owner token used for this request", tags=["claim"])
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, OwnerToken):
            raise ApiError("bad_request", "Send the token to revoke as the Bearer token.")
        count = OwnerToken.objects.filter(pk=request.auth.pk, revoked_at__isnull=True).update(
            revoked_at=services.timezone.now())
        return Response({"revoked": count})


class StationCredentialApi(CertificatesApiView):
    authentication_classes: list = []

    @extend_schema(responses={200: StationCredentialSerializer, 409: E409},
                   summary="This station's credential (owner delegation of its key)",
                   tags=["claim"])
    def get(self, request: Request) -> Response:
        credential = services.station_credential()
        if credential is None:
            raise ApiError("not_claimed", "The station is not claimed yet.", status_code=409)
        return Response(credential)
