from __future__ import annotations

from django.urls import path

from certificates import api

urlpatterns = [
    path("api/claim-station/nonce", api.ClaimNonceApi.as_view(), name="claim-station-nonce"),
    path("api/claim-station", api.ClaimStationApi.as_view(), name="claim-station"),
    path("api/station-credential", api.StationCredentialApi.as_view(),
         name="station-credential"),
    path("api/owner-token/rotate", api.OwnerTokenRotateApi.as_view(), name="owner-token-rotate"),
    path("api/owner-token", api.OwnerTokenRevokeApi.as_view(), name="owner-token"),
    path("api/certificates", api.CertificateListApi.as_view(), name="certificate-list"),
    path("api/certificates/<str:fingerprint>", api.CertificateDetailApi.as_view(),
         name="certificate-detail"),
    path("api/certificates/<str:fingerprint>/blacklist", api.CertificateBlacklistApi.as_view(),
         name="certificate-blacklist"),
    path("api/trust-roots", api.TrustRootListApi.as_view(), name="trust-root-list"),
    path("api/trust-roots/<str:fingerprint>", api.TrustRootDeleteApi.as_view(),
         name="trust-root-delete"),
    path("api/issue-certificate", api.CertificateIssueApi.as_view(), name="issue-certificate"),
]
